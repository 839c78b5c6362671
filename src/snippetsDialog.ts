import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ISnippet } from './api';
import { copyButton, el } from './dom';

/** The dialog body: each snippet with its title, its code and a Copy button. */
class SnippetsBody extends Widget {
  constructor(snippets: ISnippet[]) {
    super();
    this.addClass('jp-SparkserveSnippets');
    this.node.dataset.testid = 'sparkserve-snippets';
    for (const snippet of snippets) {
      const copy = copyButton(snippet.code, 'sparkserve-snippet-copy');
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
