import { INotebookTracker } from '@jupyterlab/notebook';

import { ISnippet } from './api';

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
      source: snippet.cell, // the server writes the cell (a shell snippet as a %%bash cell)
      metadata: {},
      outputs: [],
      execution_count: null
    }))
  );
  notebook.activeCellIndex = at;
  return panel.context.path;
}
