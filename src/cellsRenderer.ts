/**
 * The renderer of the cells bundle (`application/vnd.sparkserve.cells+json`) that `%sfdeploy`
 * and `%sfsnippets` emit: it shows the bundle's summary and inserts the bundle's code cells
 * directly below the notebook cell whose output holds it, at most once per bundle id (the
 * contract is in jupyter_sparkserve/cells.py).
 *
 * Once means: not when the output is re-rendered, not when the page is reloaded or the saved
 * notebook reopened, and not after the user deleted the inserted cells. Before inserting, the
 * renderer looks for a cell whose `metadata.sparkserve.bundle` is the id, and for the id in
 * `metadata.sparkserve.inserted_bundles` of the notebook and of the producing cell; inserting
 * records the id in both, in the same transaction as the insertion.
 */
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';
import { Message } from '@lumino/messaging';

export const CELLS_MIME_TYPE = 'application/vnd.sparkserve.cells+json';
export const BUNDLE_VERSION = 1;
/** Above the default renderers (lower ranks win; markdown is 60, plain text 120). */
const RANK = 10;
const METADATA_KEY = 'sparkserve';

interface IBundleCell {
  cell_type?: string;
  source?: string | string[];
  metadata?: Record<string, unknown>;
}

interface IBundle {
  version?: unknown;
  id?: unknown;
  summary?: unknown;
  cells?: unknown;
}

type CellModel = NotebookPanel['content']['widgets'][number]['model'];

/** What the renderer did with a bundle; also its `data-state` (for tests and styling). */
export type InsertState = 'pending' | 'inserted' | 'already' | 'unknown-version' | 'no-notebook';

function readBundle(value: unknown): IBundle | null {
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return null;
    }
  }
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as IBundle) : null;
}

function bundleIdOf(output: { data: Record<string, unknown> }): string | null {
  const bundle = readBundle(output.data[CELLS_MIME_TYPE]);
  return bundle && typeof bundle.id === 'string' ? bundle.id : null;
}

function sparkserveMetadata(holder: { getMetadata(key: string): any }): Record<string, any> {
  const value = holder.getMetadata(METADATA_KEY);
  return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
}

function insertedBundles(holder: { getMetadata(key: string): any }): string[] {
  const ids = sparkserveMetadata(holder).inserted_bundles;
  return Array.isArray(ids) ? ids.filter(id => typeof id === 'string') : [];
}

interface IMetadataHolder {
  getMetadata(key: string): any;
  setMetadata(key: string, value: any): void;
}

function recordInserted(holder: IMetadataHolder, id: string): void {
  const metadata = sparkserveMetadata(holder);
  holder.setMetadata(METADATA_KEY, {
    ...metadata,
    inserted_bundles: [...insertedBundles(holder), id]
  });
}

/** The code cell model of `panel` whose outputs hold the bundle `id`, with its index. */
function producingCell(
  panel: NotebookPanel,
  id: string
): { cell: CellModel; index: number } | null {
  const model = panel.content.model;
  if (!model) {
    return null;
  }
  for (let index = 0; index < model.cells.length; index++) {
    const cell = model.cells.get(index);
    const outputs = (cell as any).outputs;
    if (cell.type !== 'code' || !outputs) {
      continue;
    }
    for (let o = 0; o < outputs.length; o++) {
      if (bundleIdOf(outputs.get(o)) === id) {
        return { cell, index };
      }
    }
  }
  return null;
}

function toSource(source: IBundleCell['source']): string {
  return Array.isArray(source) ? source.join('') : typeof source === 'string' ? source : '';
}

export class CellsRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions, tracker: INotebookTracker) {
    super();
    this._mimeType = options.mimeType;
    this._tracker = tracker;
    this.addClass('jp-SparkserveCells');
    this._summary = document.createElement('div');
    this._summary.className = 'jp-SparkserveCells-summary';
    this._status = document.createElement('div');
    this._status.className = 'jp-SparkserveCells-status';
    this._status.dataset.testid = 'sparkserve-cells-status';
    this.node.append(this._summary, this._status);
    this._setState('pending', '');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this._bundle = readBundle(model.data[this._mimeType]);
    const summary = this._bundle?.summary;
    this._summary.textContent =
      typeof summary === 'string' ? summary : 'A sparkserve cells bundle without a summary.';
    this._done = false;
    if (this.isAttached) {
      this._insertOnce();
    }
    return Promise.resolve();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._insertOnce();
  }

  /** The notebook panel this output is shown in, if any (else: the tracker's panel whose
   * model holds the bundle, for an output shown in another view). */
  private _findPanel(id: string): NotebookPanel | null {
    for (let widget = this.parent; widget; widget = widget.parent) {
      if (this._tracker.has(widget as NotebookPanel)) {
        return widget as NotebookPanel;
      }
    }
    return this._tracker.find(panel => producingCell(panel, id) !== null) ?? null;
  }

  private _insertOnce(): void {
    if (this._done) {
      return;
    }
    const bundle = this._bundle;
    if (!bundle) {
      this._done = true;
      this._setState('unknown-version', 'Not a sparkserve cells bundle: no cells inserted.');
      return;
    }
    if (bundle.version !== BUNDLE_VERSION) {
      this._done = true;
      this._setState(
        'unknown-version',
        `Unknown cells bundle version ${JSON.stringify(bundle.version)}: no cells inserted ` +
          '(update jupyter_sparkserve).'
      );
      return;
    }
    const id = bundle.id;
    const cells = Array.isArray(bundle.cells) ? (bundle.cells as IBundleCell[]) : [];
    this.node.dataset.bundle = typeof id === 'string' ? id : '';
    if (typeof id !== 'string' || !id || cells.length === 0) {
      this._done = true;
      this._setState('unknown-version', 'A cells bundle without an id or cells: none inserted.');
      return;
    }
    const panel = this._findPanel(id);
    const notebook = panel?.content.model;
    const found = panel ? producingCell(panel, id) : null;
    if (!panel || !notebook || !found) {
      // Not (yet) in a notebook: a console, an output view. Try again on the next attach.
      this._setState('no-notebook', 'The cells go into a notebook: none inserted here.');
      return;
    }
    this._done = true;
    let present = false;
    for (let index = 0; index < notebook.cells.length; index++) {
      if (sparkserveMetadata(notebook.cells.get(index)).bundle === id) {
        present = true;
        break;
      }
    }
    if (
      present ||
      insertedBundles(notebook).includes(id) ||
      insertedBundles(found.cell).includes(id)
    ) {
      this._setState('already', 'Cells already inserted.');
      return;
    }
    const newCells = cells.map(cell => ({
      cell_type: 'code' as const,
      source: toSource(cell.source),
      metadata: (cell.metadata && typeof cell.metadata === 'object' ? cell.metadata : {}) as any,
      outputs: [],
      execution_count: null
    }));
    notebook.sharedModel.transact(() => {
      notebook.sharedModel.insertCells(found.index + 1, newCells);
      recordInserted(notebook, id);
      recordInserted(found.cell, id);
    });
    const count = newCells.length;
    this._setState('inserted', `Inserted ${count} cell${count === 1 ? '' : 's'} below.`);
  }

  private _setState(state: InsertState, text: string): void {
    this.node.dataset.state = state;
    this._status.textContent = text;
    this._status.hidden = text === '';
  }

  private _mimeType: string;
  private _tracker: INotebookTracker;
  private _summary: HTMLDivElement;
  private _status: HTMLDivElement;
  private _bundle: IBundle | null = null;
  private _done = false;
}

export function cellsRendererFactory(tracker: INotebookTracker): IRenderMime.IRendererFactory {
  return {
    safe: true,
    mimeTypes: [CELLS_MIME_TYPE],
    defaultRank: RANK,
    createRenderer: options => new CellsRenderer(options, tracker)
  };
}
