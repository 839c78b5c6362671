import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { copyIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { ISnippet } from './api';
import { button, el } from './dom';

/** The dialog body: each snippet with its title, its code and a Copy button. */
class SnippetsBody extends Widget {
  constructor(snippets: ISnippet[]) {
    super();
    this.addClass('jp-SparkserveSnippets');
    this.node.dataset.testid = 'sparkserve-snippets';
    for (const snippet of snippets) {
      const copy = button(
        'Copy',
        () => {
          Clipboard.copyToSystem(snippet.code);
          copy.textContent = 'Copied';
          window.setTimeout(() => (copy.textContent = 'Copy'), 1500);
        },
        { className: 'jp-SparkserveSnippet-copy', testId: 'sparkserve-snippet-copy' }
      );
      copy.prepend(copyIcon.element({ tag: 'span', className: 'jp-SparkserveButton-icon' }));
      this.node.append(
        el(
          'section',
          {
            className: 'jp-SparkserveSnippet',
            testId: 'sparkserve-snippet',
            dataset: { language: snippet.language }
          },
          el(
            'div',
            { className: 'jp-SparkserveSnippet-header' },
            el('span', { className: 'jp-SparkserveSnippet-title', text: snippet.title }),
            copy
          ),
          el('pre', { className: 'jp-SparkserveSnippet-code' }, el('code', { text: snippet.code }))
        )
      );
    }
  }
}

/**
 * Show the snippets. Resolves true when the user asked to insert them into the notebook.
 */
export async function snippetsDialog(title: string, snippets: ISnippet[]): Promise<boolean> {
  const result = await showDialog({
    title,
    body: new SnippetsBody(snippets),
    buttons: [
      Dialog.cancelButton({ label: 'Close' }),
      Dialog.okButton({
        label: 'Insert into notebook',
        caption: 'Add the snippets as code cells below the active cell of the current notebook'
      })
    ]
  });
  return result.button.accept;
}
