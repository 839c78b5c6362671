import { INotebookTracker } from '@jupyterlab/notebook';
import { Contents } from '@jupyterlab/services';
import { refreshIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IActionContext, IMessageAction, MessageKind, runAction } from './actions';
import { ActionsMenu } from './actionsMenu';
import {
  api,
  errorMessage,
  FRONTEND_VERSION,
  IEngineStatus,
  IStatus,
  ITargetStatus
} from './api';
import { button, el } from './dom';
import { JobsView } from './jobsView';
import { ModelList } from './modelList';

export interface ISparkservePanelOptions {
  /** The open notebooks, for "Insert into notebook"; null without the notebook plugin. */
  notebooks: INotebookTracker | null;
  /** The server's files, for saving what an action writes (a Kubernetes manifest). */
  contents: Contents.IManager | null;
  /** Bring a main-area widget to the front. */
  activate: (id: string) => void;
}

type Source = 'models' | 'status' | 'jobs';

/**
 * The sparkserve sidebar: the model list with its Actions menus, the jobs view, and the
 * repository's status. It reads everything from the REST API when it is shown, and again on
 * Refresh or after an action.
 */
export class SparkservePanel extends Widget {
  constructor(options: ISparkservePanelOptions) {
    super();
    this.id = 'jp-sparkserve-sidebar';
    this.addClass('jp-SparkservePanel');
    this.title.caption = 'Model serving (jupyter_sparkserve)';

    this._refreshButton = button('Refresh', () => void this.refresh(), {
      className: 'jp-SparkservePanel-refresh',
      testId: 'sparkserve-refresh',
      title: 'Read the repository and the jobs again'
    });
    this._refreshButton.prepend(
      refreshIcon.element({ tag: 'span', className: 'jp-SparkserveButton-icon' })
    );
    const header = el(
      'div',
      { className: 'jp-SparkservePanel-header' },
      el('h2', { text: 'Models' }),
      this._refreshButton
    );

    this._banner = el('div', { className: 'jp-SparkservePanel-banner', attrs: { role: 'alert' } });
    this._message = el('div', {
      className: 'jp-SparkservePanel-message',
      testId: 'sparkserve-message',
      attrs: { role: 'status', 'aria-live': 'polite' }
    });
    this._message.hidden = true;
    this._menu = new ActionsMenu(
      (action, target, deployTo) => void runAction(action, target, this._context, deployTo)
    );
    this._models = new ModelList({
      onActions: (target, anchor) =>
        void this._menu.open(
          target,
          anchor,
          this._targets().catch(() => [])
        ),
      onError: message => this._setError('models', message)
    });
    this._jobs = new JobsView({ onError: message => this._setError('jobs', message) });
    this._status = el('div', { className: 'jp-SparkservePanel-status' });
    const body = el(
      'div',
      { className: 'jp-SparkservePanel-body' },
      this._banner,
      this._message,
      this._models.node,
      this._jobs.node,
      this._status
    );
    this.node.append(header, body);

    this._context = {
      targets: () => this._targets(),
      engines: () => this._engines(),
      notebooks: options.notebooks,
      contents: options.contents,
      activate: options.activate,
      say: (kind, text, action) => this._say(kind, text, action),
      changed: () => this._models.refresh(),
      jobStarted: job => void this._jobs.track(job)
    };
  }

  /**
   * Read the model page, then the jobs and the status. The page goes first and alone: it is
   * what the user opened the sidebar for, and a server's first `status` can take seconds.
   */
  async refresh(): Promise<void> {
    this._refreshButton.disabled = true;
    try {
      await this._models.refresh();
      await Promise.all([this._readStatus(), this._jobs.refresh()]);
    } finally {
      this._refreshButton.disabled = false;
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._menu.dispose();
    this._models.dispose();
    this._jobs.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  private async _readStatus(): Promise<IStatus | null> {
    try {
      const status = await api.status();
      this._statusAnswer = status;
      this._renderStatus(status);
      this._setError('status', null);
      return status;
    } catch (error) {
      this._setError('status', errorMessage(error));
      return null;
    }
  }

  private async _targets(): Promise<ITargetStatus[]> {
    const status = this._statusAnswer ?? (await this._readStatus());
    if (status?.targets === undefined) {
      throw new Error(
        'The server extension does not say which deployment targets work here: it is older ' +
          'than this sidebar. Upgrade jupyter_sparkserve and restart JupyterLab.'
      );
    }
    return status.targets;
  }

  private async _engines(): Promise<IEngineStatus[]> {
    const status = this._statusAnswer ?? (await this._readStatus());
    if (status?.engines === undefined) {
      throw new Error(
        'The server extension does not say which batch engines work here: it is older than ' +
          'this sidebar. Upgrade jupyter_sparkserve and restart JupyterLab.'
      );
    }
    return status.engines;
  }

  private _renderStatus(status: IStatus): void {
    const { models, versions } = status.repository;
    const lines = [
      el('p', {
        className: 'jp-SparkservePanel-count',
        text: `${models} ${models === 1 ? 'model' : 'models'}, ${versions} ${
          versions === 1 ? 'version' : 'versions'
        }`
      }),
      el('p', { className: 'jp-SparkservePanel-home', text: `Repository: ${status.home}` }),
      el('p', {
        className: 'jp-SparkservePanel-version',
        text: `jupyter_sparkserve ${status.version}`
      })
    ];
    this._status.replaceChildren(...lines);
    this._mismatch =
      status.version === FRONTEND_VERSION
        ? null
        : `The sparkserve server extension is version ${status.version} but this sidebar is ` +
          `${FRONTEND_VERSION}: install one release of jupyter_sparkserve and restart JupyterLab.`;
    this._renderBanner();
  }

  private _setError(source: Source, message: string | null): void {
    if (message === null) {
      this._errors.delete(source);
    } else {
      this._errors.set(source, message);
    }
    this._renderBanner();
  }

  /** Setup problems and failed reads, each message once (a missing extension fails all). */
  private _renderBanner(): void {
    const errors = [...new Set(this._errors.values())].map(text =>
      el('p', { className: 'jp-SparkservePanel-error', testId: 'sparkserve-error', text })
    );
    const warnings =
      this._mismatch === null
        ? []
        : [
            el('p', {
              className: 'jp-SparkservePanel-warning',
              testId: 'sparkserve-version-mismatch',
              text: this._mismatch
            })
          ];
    this._banner.replaceChildren(...errors, ...warnings);
  }

  private _say(kind: MessageKind, text: string, action?: IMessageAction): void {
    this._message.hidden = false;
    this._message.dataset.kind = kind;
    this._message.className = `jp-SparkservePanel-message jp-mod-${kind}`;
    this._message.textContent = text;
    if (action !== undefined) {
      const button = el('button', {
        className: 'jp-Button jp-mod-styled jp-SparkservePanel-remedy',
        testId: 'sparkserve-remedy',
        text: action.label
      });
      button.addEventListener('click', () => {
        button.disabled = true;
        void action.run();
      });
      this._message.append(' ', button);
    }
  }

  private _banner: HTMLElement;
  private _message: HTMLElement;
  private _status: HTMLElement;
  private _refreshButton: HTMLButtonElement;
  private _menu: ActionsMenu;
  private _models: ModelList;
  private _jobs: JobsView;
  private _context: IActionContext;
  private _statusAnswer: IStatus | null = null;
  private _mismatch: string | null = null;
  private _errors = new Map<Source, string>();
}
