import { INotebookTracker } from '@jupyterlab/notebook';

import { ISnippet } from './api';

/**
 * The source of the code cell a snippet becomes. A shell snippet runs through IPython's `!`,
 * which would expand `$NAME` and `{expression}` itself: they are doubled so that the shell gets
 * them as written (the token stays `$SPARKSERVE_ENDPOINT_TOKEN`, the JSON body stays JSON).
 */
export function cellSource(snippet: ISnippet): string {
  if (snippet.language !== 'shell') {
    return snippet.code;
  }
  const escaped = snippet.code.replace(/[{}$]/g, character => character + character);
  return `!${escaped}`;
}

/**
 * Insert the snippets as code cells below the active cell of the current notebook (at the end
 * when no cell is active) and make the first of them active. Returns the notebook's path.
 */
export function insertIntoNotebook(tracker: INotebookTracker | null, snippets: ISnippet[]): string {
  const panel = tracker?.currentWidget ?? null;
  const notebook = panel?.content;
  const model = notebook?.model;
  if (!panel || !notebook || !model) {
    throw new Error(
      'No notebook is open: open one, click the cell the snippets go below, and insert again.'
    );
  }
  const active = notebook.activeCellIndex;
  const at = active >= 0 ? active + 1 : model.cells.length;
  model.sharedModel.insertCells(
    at,
    snippets.map(snippet => ({
      cell_type: 'code',
      source: cellSource(snippet),
      metadata: {},
      outputs: [],
      execution_count: null
    }))
  );
  notebook.activeCellIndex = at;
  return panel.context.path;
}
