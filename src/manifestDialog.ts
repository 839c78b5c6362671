import { Dialog } from '@jupyterlab/apputils';
import { Contents } from '@jupyterlab/services';

import { api, ApiError, IKubernetesManifest } from './api';
import { CheckedDialog, field, FormBody, input } from './dialogs';
import { copyButton, el } from './dom';
import { IProblem, problemOf } from './validate';

/** What was done with the manifests: saved (where, from the file browser's root), their
 * cells to insert, or nothing. */
export type ManifestChoice = { action: 'save'; path: string } | { action: 'insert' } | null;

const SAVE = 'Save';
const REPLACE = 'Replace';
const INSERT = 'Insert into notebook';
const NO_FILES = 'This JupyterLab gives the sidebar no file access: copy the YAML instead.';

/** The YAML with a Copy button, under the path to save it to. */
function manifestBody(manifest: IKubernetesManifest, path: HTMLInputElement): FormBody<string> {
  path.value = manifest.filename;
  const body = new FormBody<string>(
    () => path.value,
    field('Save as', path, 'A path in the Jupyter file browser, from its root.', 'path'),
    el(
      'section',
      { className: 'jp-SparkserveSnippet' },
      el(
        'div',
        { className: 'jp-SparkserveSnippet-header' },
        el('span', { className: 'jp-SparkserveSnippet-title', text: manifest.summary }),
        copyButton(manifest.yaml, 'sparkserve-k8s-copy')
      ),
      el(
        'pre',
        { className: 'jp-SparkserveSnippet-code', testId: 'sparkserve-k8s-yaml' },
        el('code', { text: manifest.yaml })
      )
    )
  );
  body.addClass('jp-SparkserveSnippets');
  return body;
}

/**
 * Show the manifests. Save asks the server whether the path will do (the core's rule: in the
 * file browser's root, a .yaml or .yml name, in a folder that exists) and writes the file
 * through the Jupyter contents API, inside the dialog: a refusal is shown next to the path
 * with everything kept. A file that exists is not replaced unasked: the server says so, and
 * Save becomes Replace until the path is changed, as JupyterLab's Save As asks first.
 * Resolves to what was done.
 */
export async function manifestDialog(
  manifest: IKubernetesManifest,
  contents: Contents.IManager | null
): Promise<ManifestChoice> {
  const path = input('k8s-path', manifest.filename);
  const body = manifestBody(manifest, path);
  let replacing: string | null = null; // the path the user was told exists
  let saved: string | null = null;
  const dialog = new CheckedDialog<string>(
    {
      title: `Kubernetes manifest for ${manifest.ref}`,
      body,
      buttons: [
        Dialog.cancelButton({ label: 'Close' }),
        Dialog.okButton({
          label: INSERT,
          caption: 'Add a cell writing the file and one applying it, below the active cell'
        }),
        Dialog.okButton({ label: SAVE, caption: 'Write the YAML to the path above' })
      ]
    },
    async (typed, button): Promise<IProblem | null> => {
      if (button.label !== SAVE) {
        return null; // Insert writes nothing
      }
      if (contents === null) {
        return { message: NO_FILES };
      }
      try {
        const checked = await api.checkManifestFile(typed, replacing === typed);
        await contents.save(checked.path, {
          type: 'file',
          format: 'text',
          content: manifest.yaml
        });
        saved = checked.path;
        return null;
      } catch (error) {
        if (error instanceof ApiError && error.code === 'FILE_EXISTS') {
          replacing = typed;
          offerReplace(dialog, true);
        }
        return problemOf(error);
      }
    }
  );
  path.addEventListener('input', () => {
    replacing = null;
    offerReplace(dialog, false);
  });
  const result = await dialog.launch();
  if (!result.button.accept) {
    return null;
  }
  if (result.button.label === SAVE) {
    return saved === null ? null : { action: 'save', path: saved };
  }
  return { action: 'insert' };
}

/** Save says Replace (in the warning colour) while the path typed names a file that exists. */
function offerReplace(dialog: Dialog<string>, replace: boolean): void {
  const buttons = dialog.node.querySelectorAll<HTMLButtonElement>('.jp-Dialog-button');
  const save = buttons[buttons.length - 1];
  const label = save?.querySelector<HTMLElement>('.jp-Dialog-buttonLabel');
  if (!save || !label) {
    return;
  }
  const text = replace ? REPLACE : SAVE;
  label.textContent = text;
  label.setAttribute('aria-label', text);
  label.title = replace
    ? 'Replace the file at the path above with the YAML'
    : 'Write the YAML to the path above';
  save.classList.toggle('jp-mod-warn', replace);
  save.dataset.replace = String(replace);
}
