import { Clipboard } from '@jupyterlab/apputils';
import { copyIcon, inspectorIcon } from '@jupyterlab/ui-components';

import { api, DeploymentStatus, errorMessage, IDeployment } from './api';
import { button, el } from './dom';
import { Rereader } from './rereader';
import { collapsibleSection } from './section';

/** While a deployment starts, its step is read this often (it is in its log, not a row). */
const STARTING_POLL_MS = 1000;

export interface IDeploymentsViewOptions {
  onError: (message: string | null) => void;
  /** A deployment the sidebar follows moved on a step while it starts. */
  onProgress: (deployment: IDeployment) => void;
  /** A deployment seen starting (or first seen after the view began watching) came up or
   * failed. */
  onEnded: (deployment: IDeployment) => void;
  /** A deployment seen serving stopped on its own (the server's watcher marked it failed). */
  onDied: (deployment: IDeployment) => void;
  /** Run one of a deployment's actions, as the API offers them. */
  onAction: (action: string, deployment: IDeployment) => Promise<void>;
}

/** Labels of the actions the core offers a deployment (`lifecycle.deployment_actions`). */
const LABELS: Record<string, string> = {
  undeploy: 'Undeploy',
  snippets: 'Snippets',
  monitor: 'Monitor',
  dismiss: 'Dismiss'
};

/**
 * The Deployments section: every deployment that is up or starting, and the failed ones until
 * they are dismissed (the API's `attention` list: a stopped one was the user's own Undeploy,
 * already said), with its target, URL (a Copy button), status, a failed one's error, and the
 * actions the API gives it; nothing here decides which.
 */
export class DeploymentsView {
  readonly node: HTMLElement;

  constructor(options: IDeploymentsViewOptions) {
    this._options = options;
    this._list = el('div', {
      className: 'jp-SparkserveDeployments-list',
      testId: 'sparkserve-deployments',
      attrs: { role: 'list' }
    });
    this._empty = el('p', {
      className: 'jp-SparkserveDeployments-empty',
      text: 'No deployment is up.'
    });
    this.node = collapsibleSection(
      'Deployments',
      { className: 'jp-SparkserveDeployments' },
      this._empty,
      this._list
    ).node;
  }

  /** Read the deployments again (one read at a time; a call during one reads once more). */
  async refresh(): Promise<void> {
    await this._reads.run();
  }

  /** Follow a deployment the sidebar just started. */
  async track(deployment: IDeployment): Promise<void> {
    this._seen.set(deployment.id, deployment.status);
    this._followed.add(deployment.id);
    this._options.onProgress(deployment);
    await this.refresh();
  }

  dispose(): void {
    this._disposed = true;
    window.clearTimeout(this._timer);
  }

  private async _read(): Promise<void> {
    window.clearTimeout(this._timer);
    if (this._disposed) {
      return;
    }
    try {
      const { items } = await api.listDeployments({ attention: true });
      await this._noticeChanges(items);
      this._render(items);
      this._options.onError(null);
    } catch (error) {
      this._options.onError(errorMessage(error));
    }
    if (!this._disposed && [...this._seen.values()].includes('starting')) {
      this._timer = window.setTimeout(() => void this.refresh(), STARTING_POLL_MS);
    }
  }

  /** Starts that moved on a step or ended since the last read. */
  private async _noticeChanges(items: IDeployment[]): Promise<void> {
    const listed = new Set(items.map(item => item.id));
    // One that was starting and is no longer listed was stopped (a failed one stays listed
    // until dismissed): read how it ended.
    for (const [id, status] of [...this._seen]) {
      if (status === 'starting' && !listed.has(id)) {
        try {
          this._ended(await api.getDeployment(id));
        } catch {
          this._followed.delete(id); // removed meanwhile: nothing to say
        }
        this._seen.delete(id);
      } else if (!listed.has(id)) {
        this._seen.delete(id); // undeployed
      }
    }
    for (const item of items) {
      const before = this._seen.get(item.id);
      if (item.status === 'starting') {
        if (this._followed.has(item.id)) {
          this._options.onProgress(item);
        }
      } else if (before === undefined ? this._baseline : before === 'starting') {
        this._ended(item);
      } else if (before === 'running' && item.status === 'failed') {
        this._options.onDied(item);
      }
      this._seen.set(item.id, item.status);
    }
    this._baseline = true;
  }

  private _ended(deployment: IDeployment): void {
    this._followed.delete(deployment.id);
    this._options.onEnded(deployment);
  }

  private _render(items: IDeployment[]): void {
    const rows = items.map(item => this._row(item));
    this._list.replaceChildren(...rows);
    this._empty.hidden = rows.length > 0;
  }

  private _row(deployment: IDeployment): HTMLElement {
    const kind = `jp-SparkserveDeployment-status-${deployment.status}`;
    const status = el('span', {
      className: `jp-SparkserveDeployment-status ${kind}`,
      testId: 'sparkserve-deployment-status',
      text: deployment.status
    });
    const url = el('code', {
      className: 'jp-SparkserveDeployment-url',
      testId: 'sparkserve-deployment-url',
      text: deployment.url || '(no URL yet)'
    });
    const copy = button('', () => Clipboard.copyToSystem(deployment.url), {
      className: 'jp-SparkserveDeployment-copy',
      testId: 'sparkserve-deployment-copy',
      title: 'Copy the URL',
      attrs: { 'aria-label': `Copy the URL of ${deployment.ref}` }
    });
    copy.prepend(copyIcon.element({ tag: 'span', className: 'jp-SparkserveButton-icon' }));
    copy.disabled = !deployment.url;
    const make = (action: string, reason = ''): [string, HTMLButtonElement] => {
      const made = button(
        LABELS[action] ?? action,
        event => {
          (event.currentTarget as HTMLButtonElement).disabled = true;
          void this._options.onAction(action, deployment).finally(() => this.refresh());
        },
        {
          className: `jp-SparkserveDeployment-action jp-SparkserveDeployment-${action}`,
          testId: `sparkserve-deployment-${action}`,
          title: reason
        }
      );
      made.disabled = reason !== ''; // not offered now: greyed with the core's reason
      if (action === 'monitor') {
        made.prepend(inspectorIcon.element({ tag: 'span', className: 'jp-SparkserveButton-icon' }));
        made.setAttribute('aria-label', `Monitor ${deployment.ref}`);
      }
      return [action, made];
    };
    const order = Object.keys(LABELS);
    const actions = [
      ...deployment.actions.map(action => make(action)),
      ...(deployment.unavailable ?? []).map(({ action, reason }) => make(action, reason))
    ]
      .sort(([a], [b]) => order.indexOf(a) - order.indexOf(b))
      .map(([, made]) => made);
    const facts = deployment.shown.map(fact => `${fact.label} ${fact.value}`).join(', ');
    const detail = deployment.status === 'starting' ? deployment.progress : facts;
    const error = deployment.status === 'failed' ? errorLines(deployment, this._openLogs) : [];
    return el(
      'div',
      {
        className: 'jp-SparkserveDeployment',
        testId: 'sparkserve-deployment',
        attrs: { role: 'listitem' },
        dataset: { deploymentId: deployment.id, status: deployment.status }
      },
      el(
        'div',
        { className: 'jp-SparkserveDeployment-header' },
        status,
        el('span', { className: 'jp-SparkserveDeployment-ref', text: deployment.ref }),
        el('span', {
          className: 'jp-SparkserveDeployment-target',
          testId: 'sparkserve-deployment-target',
          text: deployment.target
        })
      ),
      el('div', { className: 'jp-SparkserveDeployment-where' }, url, copy),
      ...(detail ? [el('p', { className: 'jp-SparkserveDeployment-detail', text: detail })] : []),
      ...error,
      el('div', { className: 'jp-SparkserveDeployment-actions' }, ...actions)
    );
  }

  private _options: IDeploymentsViewOptions;
  private _list: HTMLElement;
  private _empty: HTMLElement;
  /** Each deployment's status as last read, to tell which started or ended since. */
  private _seen = new Map<string, DeploymentStatus>();
  /** The deployments whose start the sidebar follows with a notification. */
  private _followed = new Set<string>();
  private _baseline = false;
  /** The failed deployments whose log the user opened. */
  private _openLogs = new Set<string>();
  private _reads = new Rereader(() => this._read());
  private _timer = 0;
  private _disposed = false;
}

/**
 * A failed deployment's error: its first line (what happened) as a line of the row, the rest
 * (the end of its log) behind a disclosure that keyboards and screen readers open as they do
 * any other.
 */
function errorLines(deployment: IDeployment, openLogs: Set<string>): HTMLElement[] {
  const [first, ...rest] = deployment.error.trim().split('\n');
  if (!first) {
    return [];
  }
  const shown: HTMLElement[] = [
    el('p', {
      className: 'jp-SparkserveDeployment-error',
      testId: 'sparkserve-deployment-error',
      text: first
    })
  ];
  if (rest.length > 0) {
    const log = el(
      'details',
      { className: 'jp-SparkserveDeployment-log', testId: 'sparkserve-deployment-log' },
      el('summary', { text: 'End of its log' }),
      // It scrolls: focusable, so a keyboard can scroll it too.
      el('pre', {
        className: 'jp-SparkserveDeployment-logText',
        text: rest.join('\n'),
        attrs: {
          tabindex: '0',
          role: 'region',
          'aria-label': `End of the log of ${deployment.ref} (${deployment.id})`
        }
      })
    );
    // Kept open across the section's re-renders (each change read draws the rows anew).
    log.open = openLogs.has(deployment.id);
    log.addEventListener('toggle', () => {
      if (log.open) {
        openLogs.add(deployment.id);
      } else {
        openLogs.delete(deployment.id);
      }
    });
    shown.push(log);
  }
  return shown;
}
