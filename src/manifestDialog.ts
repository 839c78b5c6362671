import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IKubernetesManifest } from './api';
import { copyButton, el } from './dom';

/** What to do with the manifests: save them as a file, or insert their cells. */
export type ManifestChoice = { action: 'save'; path: string } | { action: 'insert' } | null;

const SAVE = 'Save';
const INSERT = 'Insert into notebook';

/** The YAML with a Copy button, and the path to save it to. */
class ManifestBody extends Widget implements Dialog.IBodyWidget<string> {
  constructor(manifest: IKubernetesManifest) {
    super();
    this.addClass('jp-SparkserveForm');
    this.addClass('jp-SparkserveSnippets');
    this._path = el('input', {
      className: 'jp-mod-styled jp-SparkserveForm-input',
      testId: 'sparkserve-k8s-path',
      attrs: { name: 'k8s-path', type: 'text' }
    });
    this._path.value = manifest.filename;
    const copy = copyButton(manifest.yaml, 'sparkserve-k8s-copy');
    this.node.append(
      el(
        'label',
        { className: 'jp-SparkserveForm-field' },
        el('span', { className: 'jp-SparkserveForm-label', text: 'Save as' }),
        this._path,
        el('span', {
          className: 'jp-SparkserveForm-hint',
          text: 'A path in the Jupyter file browser, from its root.'
        })
      ),
      el(
        'section',
        { className: 'jp-SparkserveSnippet' },
        el(
          'div',
          { className: 'jp-SparkserveSnippet-header' },
          el('span', { className: 'jp-SparkserveSnippet-title', text: manifest.summary }),
          copy
        ),
        el(
          'pre',
          { className: 'jp-SparkserveSnippet-code', testId: 'sparkserve-k8s-yaml' },
          el('code', { text: manifest.yaml })
        )
      )
    );
  }

  getValue(): string {
    return this._path.value.trim();
  }

  private _path: HTMLInputElement;
}

/** Show the manifests; resolves to what the user chose to do with them. */
export async function manifestDialog(manifest: IKubernetesManifest): Promise<ManifestChoice> {
  const result = await showDialog<string>({
    title: `Kubernetes manifest for ${manifest.ref}`,
    body: new ManifestBody(manifest),
    buttons: [
      Dialog.cancelButton({ label: 'Close' }),
      Dialog.okButton({
        label: INSERT,
        caption: 'Add a cell writing the file and one applying it, below the active cell'
      }),
      Dialog.okButton({ label: SAVE, caption: 'Write the YAML to the path above' })
    ]
  });
  if (!result.button.accept) {
    return null;
  }
  if (result.button.label === SAVE) {
    return { action: 'save', path: result.value || manifest.filename };
  }
  return { action: 'insert' };
}
