import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Contents } from '@jupyterlab/services';
import { fileIcon, folderIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  errorMessage,
  IDeployOptions,
  IEngineStatus,
  IImageBuildRequest,
  IKubernetesSettings,
  IScoreSettings,
  ITargetOption,
  ITargetStatus
} from './api';
import { button, el } from './dom';
import { checks, IProblem, problemOf } from './validate';

let fieldCount = 0;

/**
 * A labelled form field. `name` is the request field the core names in its errors (`output`,
 * a deploy option such as `port`): a problem with it is shown here. `shown`: what holds the
 * control, when more than the control (an input with its Browse button).
 */
export function field(
  label: string,
  control: HTMLElement,
  hint = '',
  name = '',
  shown: HTMLElement = control
): HTMLElement {
  const id = control.id || `jp-sparkserve-field-${++fieldCount}`;
  control.id = id;
  const wrapper = el(
    'div',
    { className: 'jp-SparkserveForm-field', dataset: name ? { field: name } : {} },
    el('label', { className: 'jp-SparkserveForm-label', text: label, attrs: { for: id } }),
    shown
  );
  if (hint) {
    const hintId = `${id}-hint`;
    wrapper.append(
      el('span', { className: 'jp-SparkserveForm-hint', text: hint, attrs: { id: hintId } })
    );
    control.setAttribute('aria-describedby', hintId);
  }
  return wrapper;
}

export function input(name: string, placeholder: string, type = 'text'): HTMLInputElement {
  return el('input', {
    className: 'jp-mod-styled jp-SparkserveForm-input',
    testId: `sparkserve-${name}`,
    attrs: { name, placeholder, type }
  });
}

function select(name: string): HTMLSelectElement {
  return el('select', {
    className: 'jp-mod-styled jp-SparkserveForm-select',
    testId: `sparkserve-${name}`,
    attrs: { name }
  });
}

/**
 * A dialog body holding a form; `getValue` reads it when the dialog is accepted. A problem
 * the server finds is shown next to its field (or below the form when it names none).
 */
export class FormBody<T> extends Widget implements Dialog.IBodyWidget<T> {
  constructor(
    readonly read: () => T,
    ...fields: HTMLElement[]
  ) {
    super();
    this.addClass('jp-SparkserveForm');
    this._problem = el('p', {
      className: 'jp-SparkserveForm-problem',
      testId: 'sparkserve-form-problem',
      attrs: { role: 'alert' }
    });
    this._problem.hidden = true;
    this._busy = el('p', {
      className: 'jp-SparkserveForm-busy',
      testId: 'sparkserve-form-busy',
      text: 'Checking…',
      attrs: { role: 'status' }
    });
    this._busy.hidden = true;
    this.node.append(...fields, this._problem, this._busy);
  }

  getValue(): T {
    return this.read();
  }

  setBusy(busy: boolean): void {
    this._busy.hidden = !busy;
    this.node.setAttribute('aria-busy', String(busy));
  }

  /** Show `problem` next to its field, or below the form; null clears what is shown. */
  showProblem(problem: IProblem | null): void {
    for (const old of Array.from(this.node.querySelectorAll('.jp-SparkserveForm-error'))) {
      old.remove();
    }
    for (const control of Array.from(this.node.querySelectorAll('[aria-invalid]'))) {
      control.removeAttribute('aria-invalid');
      const hint = control.getAttribute('aria-describedby')?.split(' ')[0];
      if (hint && hint.endsWith('-hint')) {
        control.setAttribute('aria-describedby', hint);
      } else {
        control.removeAttribute('aria-describedby');
      }
    }
    this._problem.hidden = true;
    this._problem.textContent = '';
    if (problem === null) {
      return;
    }
    const wrapper = problem.field
      ? this.node.querySelector<HTMLElement>(`[data-field="${CSS.escape(problem.field)}"]`)
      : null;
    const control = wrapper?.querySelector<HTMLElement>('input, select');
    if (!wrapper || !control) {
      this._problem.textContent = problem.message;
      this._problem.hidden = false;
      return;
    }
    const id = `${control.id}-error`;
    wrapper.append(
      el('span', {
        className: 'jp-SparkserveForm-error',
        testId: 'sparkserve-field-error',
        text: problem.message,
        attrs: { id, role: 'alert' }
      })
    );
    control.setAttribute('aria-invalid', 'true');
    const described = control.getAttribute('aria-describedby');
    control.setAttribute('aria-describedby', described ? `${described} ${id}` : id);
    control.focus();
  }

  private _problem: HTMLElement;
  private _busy: HTMLElement;
}

/** What an accept button does first, inside the dialog: the problem that keeps it open, or
 * null to close it. `button`: which accept button (a dialog may have more than one). */
export type DialogCheck<T> = (value: T, button: Dialog.IButton) => Promise<IProblem | null>;

/**
 * A dialog whose accept buttons first ask the server whether what the form holds would be
 * accepted (`check`, the core's own checks). On a problem it stays open, with the message
 * next to the field at fault and everything typed still there; Cancel and Escape close it.
 */
export class CheckedDialog<T> extends Dialog<T> {
  constructor(
    options: Partial<Dialog.IOptions<T>> & { body: FormBody<T> },
    check: DialogCheck<T>
  ) {
    super(options);
    this._form = options.body;
    this._buttonList = options.buttons ?? [];
    this._check = check;
  }

  resolve(index?: number): void {
    const chosen = this._buttonList[index ?? this._buttonList.length - 1];
    if (chosen === undefined || !chosen.accept || this._passed) {
      super.resolve(index);
      return;
    }
    if (this._checking) {
      return;
    }
    this._checking = true;
    this._form.setBusy(true);
    const done = (problem: IProblem | null): void => {
      this._checking = false;
      if (this.isDisposed) {
        return; // cancelled while the server was asked
      }
      this._form.setBusy(false);
      this._form.showProblem(problem);
      if (problem === null) {
        this._passed = true;
        super.resolve(index);
      }
    };
    let value: T;
    try {
      value = this._form.getValue();
    } catch (error) {
      done(problemOf(error));
      return;
    }
    this._check(value, chosen).then(done, error => done(problemOf(error)));
  }

  private _form: FormBody<T>;
  private _buttonList: readonly Dialog.IButton[];
  private _check: DialogCheck<T>;
  private _checking = false;
  private _passed = false;
}

/** Show a form dialog checked by `check` before it closes; its value, or null if cancelled. */
async function showChecked<T>(
  title: string,
  body: FormBody<T>,
  acceptLabel: string,
  check: (value: T) => Promise<IProblem | null>
): Promise<T | null> {
  const dialog = new CheckedDialog<T>(
    {
      title,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: acceptLabel })]
    },
    check
  );
  const result = await dialog.launch();
  return result.button.accept && result.value ? result.value : null;
}

export interface IDeployChoice {
  target: string;
  options: IDeployOptions;
}

/** The field of one target option: a checkbox, a number or a (password) text input. */
function optionField(target: string, option: ITargetOption): [HTMLElement, () => unknown] {
  const name = `deploy-option-${option.name}`;
  if (option.type === 'boolean') {
    const box = input(name, '', 'checkbox');
    box.checked = option.default === true;
    return [field(option.name, box, option.help, option.name), () => box.checked];
  }
  const numeric = option.type === 'integer' || option.type === 'number';
  const kind = option.secret ? 'password' : numeric ? 'number' : 'text';
  const placeholder = option.default === null ? '' : String(option.default);
  const control = input(name, placeholder, kind);
  control.dataset.target = target;
  // The browser's hint only: the core checks the bounds (`checks/deploy`) and names the field.
  if (option.minimum !== null) {
    control.min = String(option.minimum);
  }
  if (option.maximum !== null) {
    control.max = String(option.maximum);
  }
  if (option.type === 'number') {
    control.step = 'any'; // a fraction (0.25) is a valid number, not just a step of 1
  }
  const read = (): unknown => {
    const text = control.value.trim();
    if (text === '') {
      return undefined; // the target's default
    }
    return numeric ? Number(text) : option.secret ? control.value : text;
  };
  return [field(option.name, control, option.help, option.name), read];
}

/**
 * Ask where and how to deploy `ref`. The targets, whether each is usable and the options each
 * takes come from `status`: the fields shown are the chosen target's options. The dialog
 * closes only once the server says the deploy would start (a port in use is said in it).
 */
export async function deployDialog(
  ref: string,
  targets: ITargetStatus[],
  chosen?: string
): Promise<IDeployChoice | null> {
  const target = select('deploy-target');
  const detail = el('span', {
    className: 'jp-SparkserveForm-hint',
    testId: 'sparkserve-target-detail'
  });
  for (const status of targets) {
    const label = status.title ? `${status.target}: ${status.title}` : status.target;
    const option = el('option', {
      text: status.usable ? label : `${label} (not usable here)`,
      title: status.detail,
      attrs: { value: status.target }
    });
    option.disabled = !status.usable;
    target.append(option);
  }
  const preferred =
    targets.find(status => status.usable && status.target === chosen) ??
    targets.find(status => status.usable);
  if (preferred) {
    target.value = preferred.target;
  }
  const unusable = targets.filter(status => !status.usable);
  const notes = unusable.map(status => el('li', { text: `${status.target}: ${status.detail}` }));
  const optionsBox = el('div', {
    className: 'jp-SparkserveForm-options',
    testId: 'sparkserve-deploy-options'
  });
  let readers: [string, () => unknown][] = [];
  const showTarget = (): void => {
    const chosen = targets.find(status => status.target === target.value);
    detail.textContent = chosen?.detail ?? '';
    const made = (chosen?.options ?? []).map(
      option => [option.name, optionField(target.value, option)] as const
    );
    optionsBox.replaceChildren(...made.map(([, [control]]) => control));
    readers = made.map(([name, [, read]]) => [name, read]);
  };
  target.addEventListener('change', showTarget);
  showTarget();

  const body = new FormBody<IDeployChoice>(
    () => {
      const options: IDeployOptions = {};
      for (const [name, read] of readers) {
        const value = read();
        if (value !== undefined) {
          options[name] = value as string | number | boolean;
        }
      }
      return { target: target.value, options };
    },
    field('Target', target, '', 'target'),
    detail,
    ...(notes.length > 0 ? [el('ul', { className: 'jp-SparkserveForm-notes' }, ...notes)] : []),
    optionsBox
  );
  const title = `Deploy ${ref}${chosen ? ` to ${targets.find(s => s.target === chosen)?.title ?? chosen}` : ''}`;
  return showChecked(title, body, 'Deploy', choice =>
    checks.deploy(ref, choice.target, choice.options)
  );
}

/** The folder part of a contents path ('' for the root). */
function folderOf(path: string): string {
  const at = path.lastIndexOf('/');
  return at < 0 ? '' : path.slice(0, at);
}

function nameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/**
 * A Browse button over the Jupyter server's files (the contents API, paths from the server's
 * root, which is where a job's relative paths start). For the input a file is picked; for the
 * output a file to replace, or a folder to write into under the name already typed.
 */
function browser(
  contents: Contents.IManager,
  control: HTMLInputElement,
  purpose: 'input' | 'output'
): [HTMLButtonElement, HTMLElement] {
  const panel = el('div', {
    className: 'jp-SparkserveBrowser',
    testId: `sparkserve-browse-${purpose}-panel`,
    attrs: { role: 'group', 'aria-label': `Files for the ${purpose}` }
  });
  panel.hidden = true;
  const show = async (folder: string): Promise<void> => {
    let listing: Contents.IModel;
    try {
      listing = await contents.get(folder, { content: true });
    } catch (error) {
      panel.replaceChildren(
        el('p', { className: 'jp-SparkserveForm-error', text: errorMessage(error) })
      );
      return;
    }
    const items = (listing.content as Contents.IModel[])
      .filter(item => !item.name.startsWith('.'))
      .sort((a, b) =>
        a.type === b.type
          ? a.name.localeCompare(b.name)
          : a.type === 'directory'
            ? -1
            : b.type === 'directory'
              ? 1
              : 0
      );
    const header = el('div', { className: 'jp-SparkserveBrowser-header' });
    header.append(el('span', { className: 'jp-SparkserveBrowser-path', text: `/${folder}` }));
    if (folder) {
      header.append(
        button('Up', () => void show(folderOf(folder)), {
          className: 'jp-SparkserveBrowser-up',
          attrs: { 'aria-label': 'Up one folder' }
        })
      );
    }
    if (purpose === 'output') {
      header.append(
        button(
          'Write here',
          () => {
            const name = nameOf(control.value.trim()) || control.placeholder.split(' ')[0];
            control.value = folder ? `${folder}/${name}` : name;
            panel.hidden = true;
            control.focus();
          },
          {
            className: 'jp-SparkserveBrowser-here',
            testId: 'sparkserve-browse-here',
            title: 'Write the output into this folder, under the name typed'
          }
        )
      );
    }
    const list = el('ul', { className: 'jp-SparkserveBrowser-list' });
    for (const item of items) {
      const isFolder = item.type === 'directory';
      const entry = button(
        item.name,
        () => {
          if (isFolder) {
            void show(item.path);
            return;
          }
          control.value = item.path;
          panel.hidden = true;
          control.focus();
        },
        {
          className: 'jp-SparkserveBrowser-item',
          testId: 'sparkserve-browse-item',
          dataset: { path: item.path, kind: isFolder ? 'folder' : 'file' },
          attrs: { 'aria-label': isFolder ? `Open folder ${item.name}` : `Choose ${item.name}` }
        }
      );
      entry.prepend(
        (isFolder ? folderIcon : fileIcon).element({
          tag: 'span',
          className: 'jp-SparkserveButton-icon'
        })
      );
      list.append(el('li', {}, entry));
    }
    if (items.length === 0) {
      list.append(el('li', { className: 'jp-SparkserveForm-hint', text: 'An empty folder.' }));
    }
    panel.replaceChildren(header, list);
  };
  const open = button(
    'Browse…',
    () => {
      panel.hidden = !panel.hidden;
      open.setAttribute('aria-expanded', String(!panel.hidden));
      if (!panel.hidden) {
        void show(folderOf(control.value.trim().replace(/^\/+/, '')));
      }
    },
    {
      className: 'jp-SparkserveBrowser-open',
      testId: `sparkserve-browse-${purpose}`,
      attrs: { 'aria-label': `Browse the files for the ${purpose}`, 'aria-expanded': 'false' }
    }
  );
  return [open, panel];
}

/** An input with its Browse button on one line, and the file list below. */
function withBrowser(
  control: HTMLInputElement,
  contents: Contents.IManager | null,
  purpose: 'input' | 'output'
): HTMLElement {
  if (contents === null) {
    return control;
  }
  const [open, panel] = browser(contents, control, purpose);
  const row = el('div', { className: 'jp-SparkserveForm-row' }, control, open);
  return el('div', { className: 'jp-SparkserveForm-browse' }, row, panel);
}

/** Ask what to score with `ref`: the job's input, output and engine (the usable ones the
 * server lists; `local` first). The dialog closes only once the server says the job would
 * start and its run would plan: a missing file or an output like `out.xlsx` is said in it. */
export async function scoreDialog(
  ref: string,
  engines: IEngineStatus[],
  contents: Contents.IManager | null = null
): Promise<IScoreSettings | null> {
  const source = input('score-input', 'data/new.csv, a folder or a glob');
  const output = input('score-output', 'scored.parquet or a folder');
  const engine = select('score-engine');
  // An engine not usable here is listed greyed, with why, rather than left out.
  for (const found of engines) {
    const option = el('option', {
      text: found.usable
        ? `${found.engine}: ${found.title}`
        : `${found.engine}: ${found.title} (not usable here)`,
      attrs: { value: found.engine, title: found.detail }
    });
    option.disabled = !found.usable;
    engine.append(option);
  }
  const firstUsable = engines.find(found => found.usable);
  if (firstUsable) {
    engine.value = firstUsable.engine;
  }
  const engineNotes = engines
    .filter(found => !found.usable)
    .map(found => el('li', { text: `${found.engine}: ${found.detail}` }));
  const keep = input('score-keep-columns', 'all input columns');
  const prediction = input('score-prediction-column', 'prediction');
  const pathHint = 'A path on the Jupyter server, from the folder JupyterLab shows as its root.';
  const inputField = field(
    'Input',
    source,
    pathHint,
    'input',
    withBrowser(source, contents, 'input')
  );
  const outputField = field(
    'Output',
    output,
    'Its extension sets the format: .csv, .parquet or .jsonl. A name without one is a folder ' +
      '(one output file per input).',
    'output',
    withBrowser(output, contents, 'output')
  );
  const body = new FormBody<IScoreSettings>(
    () => {
      const settings: IScoreSettings = {
        model: ref,
        input: source.value.trim(),
        output: output.value.trim(),
        engine: engine.value
      };
      if (keep.value.trim()) {
        settings.keep_columns = keep.value.trim();
      }
      if (prediction.value.trim()) {
        settings.prediction_column = prediction.value.trim();
      }
      return settings;
    },
    inputField,
    outputField,
    field('Engine', engine, '', 'engine'),
    ...(engineNotes.length > 0
      ? [el('ul', { className: 'jp-SparkserveForm-notes' }, ...engineNotes)]
      : []),
    field(
      'Keep columns',
      keep,
      'Comma-separated input columns copied to the output.',
      'keep_columns'
    ),
    field('Prediction column', prediction, '', 'prediction_column')
  );
  return showChecked(`Score with ${ref}`, body, 'Start job', checks.score);
}

/** What a dialog does on accept, inside it: a refusal keeps it open with the message. */
export type DialogAction<T> = (value: T) => Promise<void>;

function acting<T>(act: DialogAction<T>): (value: T) => Promise<IProblem | null> {
  return value =>
    act(value).then(
      () => null,
      error => problemOf(error) // next to the field the server named
    );
}

/** Ask how to build the image of `ref`: its tag, base image, and whether to push it. `start`
 * submits the build; the dialog closes once it is accepted. */
export async function buildImageDialog(
  ref: string,
  start: DialogAction<IImageBuildRequest>
): Promise<IImageBuildRequest | null> {
  const tag = input('build-tag', 'sparkserve/NAME:VERSION');
  const base = input('build-base-image', "the server's default");
  const push = input('build-push', '', 'checkbox');
  const body = new FormBody<IImageBuildRequest>(
    () => {
      const settings: IImageBuildRequest = { push: push.checked };
      if (tag.value.trim()) {
        settings.tag = tag.value.trim();
      }
      if (base.value.trim()) {
        settings.base_image = base.value.trim();
      }
      return settings;
    },
    field(
      'Tag',
      tag,
      'REGISTRY/NAME:TAG to push it, such as 127.0.0.1:5000/models/churn:3.',
      'tag'
    ),
    field('Base image', base, 'An image with Python, the same version as this server.', 'base_image'),
    field('Push', push, 'Push it to the registry the tag names once built.', 'push')
  );
  return showChecked(`Build an image of ${ref}`, body, 'Start build', acting(start));
}

/** Ask what the Kubernetes manifests of `ref` run: image, replicas, namespace, extras.
 * `make` asks the server for them (nothing is written); a refusal keeps the dialog open. */
export async function kubernetesDialog(
  ref: string,
  make: DialogAction<IKubernetesSettings>
): Promise<IKubernetesSettings | null> {
  const image = input('k8s-image', 'the tag Build image gives it');
  const replicas = input('k8s-replicas', '2', 'number');
  const namespace = input('k8s-namespace', 'the current namespace');
  const secret = input('k8s-token-secret', 'none: no token');
  const autoscale = input('k8s-autoscale', 'MIN-MAX, such as 2-10');
  const budget = input('k8s-disruption-budget', '', 'checkbox');
  const text = (control: HTMLInputElement): string | undefined =>
    control.value.trim() || undefined;
  const body = new FormBody<IKubernetesSettings>(
    () => ({
      image: text(image),
      replicas: replicas.value.trim() ? Number(replicas.value) : undefined,
      namespace: text(namespace),
      token_secret: text(secret),
      autoscale: text(autoscale),
      disruption_budget: budget.checked
    }),
    field('Image', image, 'What the pods run; push it where the cluster can pull it.', 'image'),
    field('Replicas', replicas, '', 'replicas'),
    field('Namespace', namespace, '', 'namespace'),
    field(
      'Token Secret',
      secret,
      'A Secret whose key `token` the endpoint will require.',
      'token_secret'
    ),
    field('Autoscale', autoscale, 'A HorizontalPodAutoscaler at 70% CPU.', 'autoscale'),
    field('Disruption budget', budget, 'Keep one pod up during node drains.', 'disruption_budget')
  );
  return showChecked(`Kubernetes manifest for ${ref}`, body, 'Write manifest', acting(make));
}

/** Ask before deleting `ref`. */
export async function confirmDelete(ref: string): Promise<boolean> {
  const result = await showDialog({
    title: `Delete ${ref}?`,
    body: `The version ${ref} and its files are removed from the repository. This cannot be undone.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
  });
  return result.button.accept;
}
