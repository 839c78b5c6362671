import { caretDownIcon, caretRightIcon, ellipsesIcon } from '@jupyterlab/ui-components';

import { api, errorMessage, IModelPage, IModelSummary, IModelVersion, IVersionState } from './api';
import { badge, button, el } from './dom';

/** A model version an action applies to, with the state and actions the API gave it (and
 * the actions it does not offer now, with why: the menu greys them). */
export interface IActionTarget extends IVersionState {
  name: string;
  version: number;
  ref: string;
  unavailable?: IModelSummary['unavailable'];
}

/** A date and time, short enough for the sidebar's default width. */
function shortDate(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function sizeText(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export interface IModelListOptions {
  /** Models per page (the API's `limit`). */
  pageSize?: number;
  /** Milliseconds the filter waits after the last key stroke. */
  debounceMs?: number;
  /** Open the Actions menu of a version, next to `anchor`. */
  onActions: (target: IActionTarget, anchor: HTMLElement) => void;
  /** Show an error the list could not handle itself. */
  onError: (message: string | null) => void;
}

const DEFAULT_PAGE_SIZE = 50;
const DEFAULT_DEBOUNCE_MS = 250;

/**
 * The model list: a filter box, one page of models (only that page is in the DOM, so thousands
 * of models cost one page), versions on expansion, and a pager. Everything shown comes from the
 * API as it is: badges from `registered` / `deployed`, menus from `actions`.
 */
export class ModelList {
  readonly node: HTMLElement;

  constructor(options: IModelListOptions) {
    this._options = options;
    this._pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;

    this._filter = el('input', {
      className: 'jp-SparkserveModelList-filter jp-mod-styled',
      testId: 'sparkserve-filter',
      attrs: { type: 'search', placeholder: 'Filter models by name', 'aria-label': 'Filter models' }
    });
    this._filter.addEventListener('input', () => this._onFilterInput());
    this._rows = el('div', {
      className: 'jp-SparkserveModelList-rows',
      testId: 'sparkserve-models',
      attrs: { role: 'list' }
    });
    this._pageInfo = el('span', {
      className: 'jp-SparkserveModelList-pageInfo',
      testId: 'sparkserve-page-info'
    });
    this._previous = button('Previous', () => void this._goTo(this._previousOffset()), {
      className: 'jp-SparkserveModelList-previous',
      testId: 'sparkserve-previous-page'
    });
    this._next = button('Next', () => void this._goTo(this._page?.next_offset ?? null), {
      className: 'jp-SparkserveModelList-next',
      testId: 'sparkserve-next-page'
    });
    this._pager = el(
      'div',
      { className: 'jp-SparkserveModelList-pager', testId: 'sparkserve-pager' },
      this._previous,
      this._pageInfo,
      this._next
    );
    this.node = el(
      'div',
      { className: 'jp-SparkserveModelList' },
      this._filter,
      this._rows,
      this._pager
    );
    this._renderPager();
  }

  /** Read the current page again, and the versions of every expanded model. */
  async refresh(): Promise<void> {
    await this._load(this._offset);
  }

  dispose(): void {
    window.clearTimeout(this._debounce);
  }

  private _onFilterInput(): void {
    window.clearTimeout(this._debounce);
    this._debounce = window.setTimeout(() => {
      this._nameContains = this._filter.value.trim();
      void this._load(0);
    }, this._options.debounceMs ?? DEFAULT_DEBOUNCE_MS);
  }

  private _previousOffset(): number | null {
    return this._offset > 0 ? Math.max(0, this._offset - this._pageSize) : null;
  }

  private async _goTo(offset: number | null): Promise<void> {
    if (offset !== null) {
      await this._load(offset);
    }
  }

  private async _load(offset: number): Promise<void> {
    const request = ++this._request;
    this.node.dataset.loading = 'true';
    try {
      const page = await api.listModels({
        limit: this._pageSize,
        offset,
        nameContains: this._nameContains || undefined
      });
      if (request !== this._request) {
        return; // a newer request (filter, page) answers instead
      }
      this._offset = page.offset;
      this._page = page;
      this._renderPage(page);
      this._options.onError(null);
      await Promise.all(
        page.items
          .filter(model => this._expanded.has(model.name))
          .map(model => this._loadVersions(model.name))
      );
    } catch (error) {
      if (request === this._request) {
        this._options.onError(errorMessage(error));
      }
    } finally {
      if (request === this._request) {
        delete this.node.dataset.loading;
      }
    }
  }

  private _renderPage(page: IModelPage): void {
    const visible = new Set(page.items.map(model => model.name));
    for (const name of [...this._expanded]) {
      if (!visible.has(name)) {
        this._expanded.delete(name);
      }
    }
    this._versionNodes.clear();
    const fragment = document.createDocumentFragment();
    for (const model of page.items) {
      fragment.append(this._renderModel(model));
    }
    if (page.items.length === 0) {
      fragment.append(
        el('p', {
          className: 'jp-SparkserveModelList-empty',
          text: this._nameContains
            ? `No model name contains "${this._nameContains}".`
            : 'The repository holds no model yet. Save one from a notebook with ' +
              'ModelRepository().save(model, "name") or %sfsave.'
        })
      );
    }
    this._rows.replaceChildren(fragment);
    this._renderPager();
  }

  private _renderPager(): void {
    const page = this._page;
    if (page === null || page.total === 0) {
      this._pageInfo.textContent = '';
    } else {
      const last = page.offset + page.items.length;
      this._pageInfo.textContent = `${page.offset + 1}–${last} of ${page.total}`;
    }
    this._previous.disabled = this._previousOffset() === null;
    this._next.disabled = page === null || page.next_offset === null;
    // As JupyterLab's own lists: a pager only when there is more than one page.
    this._pager.hidden = this._previous.disabled && this._next.disabled;
  }

  private _renderModel(model: IModelSummary): HTMLElement {
    const expanded = this._expanded.has(model.name);
    const toggle = el('button', {
      className: 'jp-SparkserveModel-toggle',
      testId: 'sparkserve-model-toggle',
      title: expanded ? 'Hide the versions' : 'Show the versions',
      attrs: {
        'aria-expanded': String(expanded),
        'aria-label': `Versions of ${model.name}`,
        type: 'button'
      }
    });
    (expanded ? caretDownIcon : caretRightIcon).element({ container: toggle });
    const latest: IActionTarget = {
      name: model.name,
      version: model.latest_version,
      ref: `${model.name}:${model.latest_version}`,
      registered: model.registered,
      deployed: model.deployed,
      actions: model.actions,
      unavailable: model.unavailable
    };
    const row = el(
      'div',
      { className: 'jp-SparkserveModel-row' },
      el(
        'div',
        { className: 'jp-SparkserveModel-line' },
        toggle,
        el('span', {
          className: 'jp-SparkserveModel-name',
          text: model.name,
          title: model.description || model.name
        }),
        el('span', {
          className: 'jp-SparkserveModel-latest',
          text: `v${model.latest_version}`,
          title: `Latest of ${model.version_count} version${model.version_count === 1 ? '' : 's'}`
        }),
        this._actionsButton(latest)
      ),
      el(
        'div',
        { className: 'jp-SparkserveModel-meta' },
        el('span', { className: 'jp-SparkserveModel-flavor', text: model.flavor }),
        ...this._badges(model)
      )
    );
    const versions = el('div', {
      className: 'jp-SparkserveModel-versions',
      testId: 'sparkserve-versions'
    });
    versions.hidden = !expanded;
    this._versionNodes.set(model.name, versions);
    const item = el(
      'div',
      {
        className: 'jp-SparkserveModel',
        testId: 'sparkserve-model',
        dataset: { model: model.name },
        attrs: { role: 'listitem' }
      },
      row,
      versions
    );
    toggle.addEventListener('click', () => void this._toggle(model.name, toggle, versions));
    return item;
  }

  private async _toggle(
    name: string,
    toggle: HTMLButtonElement,
    versions: HTMLElement
  ): Promise<void> {
    const expand = !this._expanded.has(name);
    toggle.setAttribute('aria-expanded', String(expand));
    toggle.replaceChildren();
    (expand ? caretDownIcon : caretRightIcon).element({ container: toggle });
    versions.hidden = !expand;
    if (expand) {
      this._expanded.add(name);
      versions.replaceChildren(
        el('p', { className: 'jp-SparkserveModel-loading', text: 'Loading…' })
      );
      await this._loadVersions(name);
    } else {
      this._expanded.delete(name);
    }
  }

  private async _loadVersions(name: string): Promise<void> {
    const container = this._versionNodes.get(name);
    if (container === undefined) {
      return;
    }
    try {
      const details = await api.getModel(name);
      container.replaceChildren(...details.versions.map(version => this._renderVersion(version)));
    } catch (error) {
      container.replaceChildren(
        el('p', { className: 'jp-SparkservePanel-error', text: errorMessage(error) })
      );
    }
  }

  private _renderVersion(version: IModelVersion): HTMLElement {
    const aliases = version.aliases.map(alias =>
      el('span', { className: 'jp-SparkserveVersion-alias', text: `@${alias}` })
    );
    const created = shortDate(version.created_at);
    return el(
      'div',
      {
        className: 'jp-SparkserveVersion',
        testId: 'sparkserve-version',
        dataset: { ref: version.ref },
        title: this._summary(version)
      },
      el(
        'div',
        { className: 'jp-SparkserveModel-line' },
        el('span', { className: 'jp-SparkserveVersion-number', text: `v${version.version}` }),
        ...aliases,
        el('span', {
          className: 'jp-SparkserveVersion-created',
          text: created,
          attrs: { 'aria-label': `saved ${created}` }
        }),
        this._actionsButton(version)
      ),
      el(
        'div',
        { className: 'jp-SparkserveModel-meta' },
        el('span', { className: 'jp-SparkserveModel-flavor', text: version.flavor }),
        ...this._badges(version)
      ),
      this._details(version)
    );
  }

  /** The version's facts in one tooltip: dates, who saved it, description, tags and metrics. */
  private _summary(version: IModelVersion): string {
    const by = version.created_by ? ` by ${version.created_by}` : '';
    const lines = [`${version.ref}, saved ${shortDate(version.created_at)}${by}`];
    if (version.description) {
      lines.push(version.description);
    }
    const tags = Object.entries(version.tags);
    if (tags.length > 0) {
      lines.push(`Tags: ${tags.map(([key, value]) => `${key}=${value}`).join(', ')}`);
    }
    const metrics = Object.entries(version.metrics);
    if (metrics.length > 0) {
      lines.push(`Metrics: ${metrics.map(([key, value]) => `${key}=${value}`).join(', ')}`);
    }
    return lines.join('\n');
  }

  /** The same facts and a few more, unfolded on demand (a native <details>, keyboard too);
   * they wrap to the sidebar's width. */
  private _details(version: IModelVersion): HTMLElement {
    const list = el('dl', { className: 'jp-SparkserveVersion-facts' });
    const fact = (label: string, value: string, testId: string): void => {
      list.append(
        el('dt', { text: label }),
        el('dd', { text: value, testId: `sparkserve-version-${testId}` })
      );
    };
    fact('Saved', new Date(version.created_at).toLocaleString(), 'created');
    if (version.created_by) {
      fact('Saved by', version.created_by, 'created-by');
    }
    if (version.description) {
      fact('Description', version.description, 'description');
    }
    for (const [key, value] of Object.entries(version.tags)) {
      fact(`Tag ${key}`, value, 'tag');
    }
    for (const [key, value] of Object.entries(version.metrics)) {
      fact(`Metric ${key}`, String(value), 'metric');
    }
    fact('Flavors', version.flavors.join(', '), 'flavors');
    fact('Size', sizeText(version.size_bytes), 'size');
    fact('MLflow', version.mlflow_version, 'mlflow');
    if (version.source) {
      fact('Source', version.source, 'source');
    }
    return el(
      'details',
      { className: 'jp-SparkserveVersion-details', testId: 'sparkserve-version-details' },
      el('summary', { text: 'Details', attrs: { 'aria-label': `Details of ${version.ref}` } }),
      list
    );
  }

  private _badges(state: IVersionState): HTMLElement[] {
    const badges: HTMLElement[] = [];
    if (state.registered) {
      badges.push(badge('registered', 'registered'));
    }
    if (state.deployed) {
      badges.push(badge('deployed', 'deployed'));
    }
    return badges;
  }

  private _actionsButton(target: IActionTarget): HTMLButtonElement {
    const actions = el('button', {
      className: 'jp-SparkserveActionsButton',
      testId: 'sparkserve-actions',
      title: `Actions for ${target.ref}`,
      dataset: { ref: target.ref },
      attrs: { type: 'button', 'aria-haspopup': 'menu', 'aria-label': `Actions for ${target.ref}` }
    });
    ellipsesIcon.element({ container: actions });
    actions.addEventListener('click', event => {
      event.stopPropagation();
      this._options.onActions(
        {
          name: target.name,
          version: target.version,
          ref: target.ref,
          registered: target.registered,
          deployed: target.deployed,
          actions: target.actions,
          unavailable: target.unavailable
        },
        actions
      );
    });
    return actions;
  }

  private _options: IModelListOptions;
  private _pageSize: number;
  private _filter: HTMLInputElement;
  private _rows: HTMLElement;
  private _pageInfo: HTMLElement;
  private _pager: HTMLElement;
  private _previous: HTMLButtonElement;
  private _next: HTMLButtonElement;
  private _page: IModelPage | null = null;
  private _offset = 0;
  private _nameContains = '';
  private _request = 0;
  private _debounce = 0;
  private _expanded = new Set<string>();
  private _versionNodes = new Map<string, HTMLElement>();
}
