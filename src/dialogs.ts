import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import {
  IDeployOptions,
  IEngineStatus,
  IImageBuildRequest,
  IKubernetesSettings,
  IScoreSettings,
  ITargetOption,
  ITargetStatus
} from './api';
import { el } from './dom';

/** A labelled form field. */
function field(label: string, control: HTMLElement, hint = ''): HTMLElement {
  const wrapper = el(
    'label',
    { className: 'jp-SparkserveForm-field' },
    el('span', { className: 'jp-SparkserveForm-label', text: label }),
    control
  );
  if (hint) {
    wrapper.append(el('span', { className: 'jp-SparkserveForm-hint', text: hint }));
  }
  return wrapper;
}

function input(name: string, placeholder: string, type = 'text'): HTMLInputElement {
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

/** A dialog body holding a form; `getValue` reads it when the dialog is accepted. */
class FormBody<T> extends Widget implements Dialog.IBodyWidget<T> {
  constructor(
    readonly read: () => T,
    ...fields: HTMLElement[]
  ) {
    super();
    this.addClass('jp-SparkserveForm');
    this.node.append(...fields);
  }

  getValue(): T {
    return this.read();
  }
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
    return [field(option.name, box, option.help), () => box.checked];
  }
  const kind = option.secret ? 'password' : option.type === 'integer' ? 'number' : 'text';
  const placeholder = option.default === null ? '' : String(option.default);
  const control = input(name, placeholder, kind);
  control.dataset.target = target;
  const read = (): unknown => {
    const text = control.value.trim();
    if (text === '') {
      return undefined; // the target's default
    }
    return option.type === 'integer' ? Number(text) : option.secret ? control.value : text;
  };
  return [field(option.name, control, option.help), read];
}

/**
 * Ask where and how to deploy `ref`. The targets, whether each is usable and the options each
 * takes come from `status`: the fields shown are the chosen target's options.
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
    field('Target', target),
    detail,
    ...(notes.length > 0 ? [el('ul', { className: 'jp-SparkserveForm-notes' }, ...notes)] : []),
    optionsBox
  );
  const result = await showDialog<IDeployChoice>({
    title: `Deploy ${ref}${chosen ? ` to ${targets.find(s => s.target === chosen)?.title ?? chosen}` : ''}`,
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Deploy' })]
  });
  return result.button.accept && result.value ? result.value : null;
}

/** Ask what to score with `ref`: the job's input, output and engine (the usable ones the
 * server lists; `local` first). */
export async function scoreDialog(
  ref: string,
  engines: IEngineStatus[]
): Promise<IScoreSettings | null> {
  const source = input('score-input', 'data/new.csv, a folder or a glob');
  const output = input('score-output', 'scored.parquet or a folder');
  const engine = select('score-engine');
  for (const found of engines.filter(candidate => candidate.usable)) {
    engine.append(
      el('option', {
        text: `${found.engine}: ${found.title}`,
        attrs: { value: found.engine, title: found.detail }
      })
    );
  }
  const keep = input('score-keep-columns', 'all input columns');
  const prediction = input('score-prediction-column', 'prediction');
  const pathHint = 'A path on the Jupyter server (relative to its working folder).';
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
    field('Input', source, pathHint),
    field('Output', output, 'CSV, Parquet or JSON Lines, from the extension; or a folder.'),
    field('Engine', engine),
    field('Keep columns', keep, 'Comma-separated input columns copied to the output.'),
    field('Prediction column', prediction)
  );
  const result = await showDialog<IScoreSettings>({
    title: `Score with ${ref}`,
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Start job' })]
  });
  return result.button.accept && result.value ? result.value : null;
}

/** Ask how to build the image of `ref`: its tag, base image, and whether to push it. */
export async function buildImageDialog(ref: string): Promise<IImageBuildRequest | null> {
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
    field('Tag', tag, 'REGISTRY/NAME:TAG to push it, such as 127.0.0.1:5000/models/churn:3.'),
    field('Base image', base, 'An image with Python, the same version as this server.'),
    field('Push', push, 'Push it to the registry the tag names once built.')
  );
  const result = await showDialog<IImageBuildRequest>({
    title: `Build an image of ${ref}`,
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Start build' })]
  });
  return result.button.accept && result.value ? result.value : null;
}

/** Ask what the Kubernetes manifests of `ref` run: image, replicas, namespace, extras. */
export async function kubernetesDialog(ref: string): Promise<IKubernetesSettings | null> {
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
    field('Image', image, 'What the pods run; push it where the cluster can pull it.'),
    field('Replicas', replicas),
    field('Namespace', namespace),
    field('Token Secret', secret, 'A Secret whose key `token` the endpoint will require.'),
    field('Autoscale', autoscale, 'A HorizontalPodAutoscaler at 70% CPU.'),
    field('Disruption budget', budget, 'Keep one pod up during node drains.')
  );
  const result = await showDialog<IKubernetesSettings>({
    title: `Kubernetes manifest for ${ref}`,
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Write manifest' })]
  });
  return result.button.accept && result.value ? result.value : null;
}

/** Ask before replacing the file at `path`. */
export async function confirmOverwrite(path: string): Promise<boolean> {
  const result = await showDialog({
    title: `Replace ${path}?`,
    body: `${path} exists already. Its content will be replaced by the manifests.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Replace' })]
  });
  return result.button.accept;
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
