import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IDeployOptions, IScoreSettings, ITargetStatus } from './api';
import { el } from './dom';

/** Score engines, as openapi.yaml's WorkflowSpec lists them. */
export const ENGINES = ['local', 'spark'];

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

/** Ask where and how to deploy `ref`; the targets and whether each is usable come from `status`. */
export async function deployDialog(
  ref: string,
  targets: ITargetStatus[]
): Promise<IDeployChoice | null> {
  const target = select('deploy-target');
  const detail = el('span', {
    className: 'jp-SparkserveForm-hint',
    testId: 'sparkserve-target-detail'
  });
  for (const status of targets) {
    const option = el('option', {
      text: status.usable ? status.target : `${status.target} (not usable here)`,
      title: status.detail,
      attrs: { value: status.target }
    });
    option.disabled = !status.usable;
    target.append(option);
  }
  const firstUsable = targets.find(status => status.usable);
  if (firstUsable) {
    target.value = firstUsable.target;
  }
  const showDetail = (): void => {
    detail.textContent = targets.find(status => status.target === target.value)?.detail ?? '';
  };
  target.addEventListener('change', showDetail);
  showDetail();
  const unusable = targets.filter(status => !status.usable);
  const notes = unusable.map(status => el('li', { text: `${status.target}: ${status.detail}` }));

  const host = input('deploy-host', '127.0.0.1');
  const port = input('deploy-port', 'a free port', 'number');
  const token = input('deploy-token', 'none: no token required', 'password');
  const body = new FormBody<IDeployChoice>(
    () => {
      const options: IDeployOptions = {};
      if (host.value.trim()) {
        options.host = host.value.trim();
      }
      if (port.value.trim()) {
        options.port = Number(port.value);
      }
      if (token.value) {
        options.token = token.value;
      }
      return { target: target.value, options };
    },
    field('Target', target),
    detail,
    ...(notes.length > 0 ? [el('ul', { className: 'jp-SparkserveForm-notes' }, ...notes)] : []),
    field('Host', host, 'The address the endpoint binds.'),
    field('Port', port),
    field('Token', token, 'A bearer token the endpoint will require.')
  );
  const result = await showDialog<IDeployChoice>({
    title: `Deploy ${ref}`,
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Deploy' })]
  });
  return result.button.accept && result.value ? result.value : null;
}

/** Ask what to score with `ref`: the job's input, output and engine. */
export async function scoreDialog(ref: string): Promise<IScoreSettings | null> {
  const source = input('score-input', 'data/new.csv, a folder or a glob');
  const output = input('score-output', 'scored.parquet or a folder');
  const engine = select('score-engine');
  for (const name of ENGINES) {
    engine.append(el('option', { text: name, attrs: { value: name } }));
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

/** Ask before deleting `ref`. */
export async function confirmDelete(ref: string): Promise<boolean> {
  const result = await showDialog({
    title: `Delete ${ref}?`,
    body: `The version ${ref} and its files are removed from the repository. This cannot be undone.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
  });
  return result.button.accept;
}
