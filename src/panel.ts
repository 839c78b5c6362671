import { Clipboard, InputDialog, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { Contents } from '@jupyterlab/services';
import { refreshIcon } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IActionContext, IMessageAction, MessageKind, runAction } from './actions';
import { ActionsMenu } from './actionsMenu';
import {
  api,
  ChangeTopic,
  errorMessage,
  FRONTEND_VERSION,
  IDeployment,
  IEngineStatus,
  IJob,
  IStatus,
  ITargetStatus
} from './api';
import { DeploymentsView } from './deploymentsView';
import { button, el } from './dom';
import { JobsView } from './jobsView';
import { openMonitor, reportShownMonitors } from './monitorView';
import { ChangeWatcher } from './live';
import { IActionTarget, ModelList } from './modelList';
import { insertIntoNotebook } from './notebookInsert';
import { Notifier } from './notify';
import { snippetsDialog } from './snippetsDialog';

export interface ISparkservePanelOptions {
  /** The open notebooks, for "Insert into notebook"; null without the notebook plugin. */
  notebooks: INotebookTracker | null;
  /** The server's files, for saving what an action writes (a Kubernetes manifest). */
  contents: Contents.IManager | null;
  /** JupyterLab's commands: opening a file (`docmanager:open`), a folder in the browser. */
  commands: CommandRegistry;
  /** Bring a main-area widget to the front. */
  activate: (id: string) => void;
  /** Add a widget to the main area (a job's log). */
  addToMain: (widget: Widget) => void;
}

type Source = 'models' | 'status' | 'jobs' | 'deployments';

/** Lines of a job's log its "Show log" opens. */
const LOG_LINES = 2000;

/**
 * The sparkserve sidebar: the model list with its Actions menus, the deployments, the jobs
 * view, and the repository's status. It reads everything when it is shown, then only what
 * the core's change counters say changed, whichever face changed it; what ends (a job, a
 * deploy) and what an action did are JupyterLab notifications.
 */
export class SparkservePanel extends Widget {
  constructor(options: ISparkservePanelOptions) {
    super();
    this.id = 'jp-sparkserve-sidebar';
    this.addClass('jp-SparkservePanel');
    this.title.caption = 'Model serving (jupyter_sparkserve)';
    this._options = options;
    reportShownMonitors(options.notebooks); // %sfmonitor widgets stop once not shown

    // An icon toolbar, as JupyterLab's own panels have.
    this._refreshButton = button('', () => void this.refresh(), {
      className: 'jp-SparkservePanel-refresh jp-SparkservePanel-tool',
      testId: 'sparkserve-refresh',
      title: 'Refresh: read the models, deployments and jobs again',
      attrs: { 'aria-label': 'Refresh' }
    });
    this._refreshButton.prepend(
      refreshIcon.element({ tag: 'span', className: 'jp-SparkserveButton-icon' })
    );
    const header = el(
      'div',
      { className: 'jp-SparkservePanel-header' },
      el('h2', { text: 'Models' }),
      el('div', { className: 'jp-SparkservePanel-toolbar', attrs: { role: 'toolbar' } },
        this._refreshButton
      )
    );

    this._banner = el('div', { className: 'jp-SparkservePanel-banner', attrs: { role: 'alert' } });
    this._notifier = new Notifier({
      openPath: path => void this.openPath(path),
      showLog: job => void this._showLog(job),
      insertSnippets: deployment => void this._insertSnippets(deployment),
      copy: text => Clipboard.copyToSystem(text)
    });
    this._menu = new ActionsMenu(
      (action, target, deployTo) => void runAction(action, target, this._context, deployTo),
      options.commands
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
    this._deployments = new DeploymentsView({
      onError: message => this._setError('deployments', message),
      onProgress: deployment => this._notifier.deploying(deployment),
      onEnded: deployment => {
        this._notifier.deploymentEnded(deployment);
        void this._models.refresh(); // its version's badge and actions
      },
      onDied: deployment => {
        this._notifier.deploymentDied(deployment);
        void this._models.refresh();
      },
      onAction: (action, deployment) => this._deploymentAction(action, deployment)
    });
    this._jobs = new JobsView({
      onError: message => this._setError('jobs', message),
      onEnded: job => this._notifier.jobEnded(job),
      openPath: path => void this.openPath(path)
    });
    this._status = el('div', { className: 'jp-SparkservePanel-status' });
    const body = el(
      'div',
      { className: 'jp-SparkservePanel-body' },
      this._banner,
      this._models.node,
      this._deployments.node,
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
      jobStarted: job => void this._jobs.track(job),
      deploymentStarted: deployment => void this._deployments.track(deployment)
    };
    this._watcher = new ChangeWatcher({
      onChange: topics => this._onChange(topics),
      visible: () => this.isVisible
    });
    // Watched from the start, shown or not: a job's end raises its notification either way.
    this._watcher.start();
    // Jobs and deployments are read once now for the same reason: what ends later is news.
    void this._jobs.refresh();
    void this._deployments.refresh();
  }

  /**
   * Read the model page, then the rest. The page goes first and alone: it is what the user
   * opened the sidebar for, and a server's first `status` can take seconds.
   */
  async refresh(): Promise<void> {
    this._refreshButton.disabled = true;
    try {
      await this._models.refresh();
      await Promise.all([this._readStatus(), this._deployments.refresh(), this._jobs.refresh()]);
    } finally {
      this._refreshButton.disabled = false;
    }
  }

  /** Show the jobs section (the palette's "Open jobs"). */
  revealJobs(): void {
    this._jobs.node.scrollIntoView({ block: 'start' });
  }

  /** Run Deploy… or Score… on a version the user names (from the command palette). */
  async runOnChosenVersion(action: 'deploy' | 'score'): Promise<void> {
    try {
      const target = await this._chooseVersion(action === 'deploy' ? 'Deploy' : 'Score');
      if (target !== null) {
        await runAction(action, target, this._context);
      }
    } catch (error) {
      this._notifier.say('error', errorMessage(error));
    }
  }

  /** Open a path of the server's files: a file in its editor or viewer, a folder in the
   * file browser. */
  async openPath(path: string): Promise<void> {
    const { contents, commands } = this._options;
    try {
      const found = contents === null ? null : await contents.get(path, { content: false });
      if (found?.type === 'directory') {
        await commands.execute('filebrowser:go-to-path', { path });
      } else {
        await commands.execute('docmanager:open', { path });
      }
    } catch (error) {
      this._notifier.say('error', `Could not open ${path}: ${errorMessage(error)}`);
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._watcher.dispose();
    this._menu.dispose();
    this._models.dispose();
    this._deployments.dispose();
    this._jobs.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
    this._watcher.poke();
  }

  /** Read again only the topics that moved; models and status wait until the sidebar is
   * shown (jobs and deployments do not: their ends are notified). */
  private async _onChange(topics: Set<ChangeTopic>): Promise<void> {
    const reads: Promise<unknown>[] = [];
    if (topics.has('models') || topics.has('deployments')) {
      if (this.isVisible) {
        // A deployment changes its version's badge and actions too.
        reads.push(this._models.refresh());
        if (topics.has('models')) {
          reads.push(this._readStatus());
        }
      } // else read when it is shown (onAfterShow)
    }
    if (topics.has('deployments')) {
      reads.push(this._deployments.refresh());
    }
    if (topics.has('jobs')) {
      reads.push(this._jobs.refresh());
    }
    await Promise.all(reads);
  }

  private async _chooseVersion(verb: string): Promise<IActionTarget | null> {
    const page = await api.listModels({ limit: 50, offset: 0 });
    const refs = page.items.map(model => `${model.name}:${model.latest_version}`);
    const answer = await InputDialog.getItem({
      title: `${verb} which model version?`,
      label: 'Model version (NAME:VERSION)',
      items: refs,
      editable: true
    });
    const ref = answer.button.accept ? (answer.value ?? '').trim() : '';
    if (!ref) {
      return null;
    }
    const at = ref.lastIndexOf(':');
    const name = at > 0 ? ref.slice(0, at) : ref;
    const details = await api.getModel(name);
    const numbers = details.versions.map(v => v.version);
    const number = at > 0 ? Number(ref.slice(at + 1)) : Math.max(...numbers);
    const version = details.versions.find(v => v.version === number);
    if (version === undefined) {
      throw new Error(`${name} has no version ${ref.slice(at + 1)}.`);
    }
    return {
      name: version.name,
      version: version.version,
      ref: `${version.name}:${version.version}`,
      registered: version.registered,
      deployed: version.deployed,
      actions: version.actions
    };
  }

  private async _deploymentAction(action: string, deployment: IDeployment): Promise<void> {
    try {
      if (action === 'undeploy') {
        this._notifier.say('progress', `Undeploying ${deployment.ref} (${deployment.id})…`);
        await api.undeploy(deployment.id);
        this._notifier.say(
          'success',
          `${deployment.ref} is undeployed (${deployment.id} stopped).`
        );
        await this._models.refresh();
      } else if (action === 'dismiss') {
        await api.dismissDeployment(deployment.id); // the section reads the change
        this._notifier.say('info', `Dismissed ${deployment.ref} (${deployment.id}).`);
      } else if (action === 'monitor') {
        openMonitor(deployment, this._options.addToMain, this._options.activate);
      } else if (action === 'snippets') {
        const found = await api.deploymentSnippets(deployment.id);
        if (await snippetsDialog(`Snippets for ${deployment.ref}`, found.snippets)) {
          this._insertCells(found.snippets);
        }
      } else {
        const message = `This sidebar does not know the action "${action}": upgrade it.`;
        this._notifier.say('error', message);
      }
    } catch (error) {
      this._notifier.say('error', `${deployment.ref}: ${errorMessage(error)}`);
    }
  }

  private async _insertSnippets(deployment: IDeployment): Promise<void> {
    try {
      this._insertCells((await api.deploymentSnippets(deployment.id)).snippets);
    } catch (error) {
      this._notifier.say('error', `${deployment.ref}: ${errorMessage(error)}`);
    }
  }

  private _insertCells(snippets: Parameters<typeof insertIntoNotebook>[1]): void {
    const path = insertIntoNotebook(this._options.notebooks, snippets);
    const notebook = this._options.notebooks?.currentWidget;
    if (notebook) {
      this._options.activate(notebook.id);
    }
    const count = snippets.length;
    this._notifier.say('success', `Inserted ${count} cell${count === 1 ? '' : 's'} into ${path}.`);
  }

  /** A job's log in the main area, as it is now (its Reload reads it again). */
  private async _showLog(job: IJob): Promise<void> {
    const text = el('pre', { className: 'jp-SparkserveLog-text', testId: 'sparkserve-log' });
    const content = new Widget({ node: el('div', { className: 'jp-SparkserveLog' }, text) });
    const widget = new MainAreaWidget({ content });
    widget.id = `jp-sparkserve-log-${job.id}`;
    widget.title.label = `Log of job ${job.id}`;
    widget.title.caption = job.title;
    widget.title.closable = true;
    const read = async () => {
      try {
        const { log } = await api.jobLog(job.id, LOG_LINES);
        text.textContent = log || '(the log is empty)';
      } catch (error) {
        text.textContent = errorMessage(error);
      }
    };
    const reload = button('Reload', () => void read(), { className: 'jp-SparkserveLog-reload' });
    content.node.prepend(reload);
    this._options.addToMain(widget);
    this._options.activate(widget.id);
    await read();
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

  /** An action's message, as a notification; a remedy the sidebar can carry out is its
   * button. */
  private _say(kind: MessageKind, text: string, action?: IMessageAction): void {
    const actions: Notification.IAction[] = [];
    if (action !== undefined) {
      const run = () => void action.run();
      actions.push({ label: action.label, displayType: 'accent', callback: run });
    }
    this._notifier.say(kind, text, actions);
  }

  private _options: ISparkservePanelOptions;
  private _banner: HTMLElement;
  private _status: HTMLElement;
  private _refreshButton: HTMLButtonElement;
  private _menu: ActionsMenu;
  private _models: ModelList;
  private _deployments: DeploymentsView;
  private _jobs: JobsView;
  private _notifier: Notifier;
  private _watcher: ChangeWatcher;
  private _context: IActionContext;
  private _statusAnswer: IStatus | null = null;
  private _mismatch: string | null = null;
  private _errors = new Map<Source, string>();
}
