import { Notification } from '@jupyterlab/apputils';

import { IDeployment, IJob } from './api';

/** What the notifications' actions do, as the sidebar around them provides it. */
export interface INotifyHandlers {
  /** Open a file or folder of the Jupyter server's (a path under its root). */
  openPath(path: string): void;
  /** Show a job's log in the main area. */
  showLog(job: IJob): void;
  /** Insert a deployment's snippets into the current notebook. */
  insertSnippets(deployment: IDeployment): void;
  /** Put text on the clipboard. */
  copy(text: string): void;
}

/** Finished toasts close by themselves after this; they stay in the notification center. */
const AUTO_CLOSE_MS = 15_000;

/**
 * The sidebar's messages, as JupyterLab notifications: an action's progress is one
 * notification, updated in place until it ends; a job or a deployment that ends raises its
 * own with what can be done next. They show whether or not the sidebar is open.
 */
export class Notifier {
  constructor(private readonly _handlers: INotifyHandlers) {}

  /** Say how an action goes: 'progress' goes on (updated in place by the next message of
   * the action); the other kinds end it. */
  say(
    kind: 'progress' | 'info' | 'success' | 'error',
    text: string,
    actions: Notification.IAction[] = []
  ): void {
    if (kind === 'progress') {
      this._pending = this._show(this._pending, text, 'in-progress', {
        autoClose: false,
        actions
      });
    } else {
      this._show(this._pending, text, kind, {
        autoClose: kind === 'error' ? false : AUTO_CLOSE_MS,
        actions
      });
      this._pending = null;
    }
  }

  /** A deployment's start goes on: the one notification it has says its latest step. */
  deploying(deployment: IDeployment): void {
    const step = deployment.progress || deployment.status;
    const text = `Deploying ${deployment.ref} (${deployment.id}): ${step}…`;
    this._deploys.set(
      deployment.id,
      this._show(this._deploys.get(deployment.id) ?? null, text, 'in-progress', {
        autoClose: false
      })
    );
  }

  /** A deployment came up, or failed to. */
  deploymentEnded(deployment: IDeployment): void {
    const id = this._deploys.get(deployment.id) ?? null;
    this._deploys.delete(deployment.id);
    if (deployment.status === 'running') {
      // Short, as a toast shows 140 characters: the target's own facts (an endpoint's name,
      // a container's image) are in the Deployments section.
      const where = `${deployment.url} (${deployment.id})`;
      const actions: Notification.IAction[] = [];
      if (deployment.actions.includes('snippets')) {
        actions.push({
          label: 'Insert snippets',
          caption: 'Insert the code that calls this endpoint into the current notebook',
          displayType: 'accent',
          callback: () => this._handlers.insertSnippets(deployment)
        });
      }
      if (deployment.url) {
        actions.push({
          label: 'Copy URL',
          callback: () => this._handlers.copy(deployment.url)
        });
      }
      this._show(id, `${deployment.ref} is deployed at ${where}.`, 'success', {
        autoClose: AUTO_CLOSE_MS,
        actions
      });
    } else {
      const why = deployment.error ? `: ${deployment.error}` : '.';
      this._show(id, `Deploying ${deployment.ref} ended ${deployment.status}${why}`, 'error', {
        autoClose: false
      });
    }
  }

  /** A deployment that served stopped on its own: said until the user hides it (its row
   * keeps the whole error and the end of its log, and offers Dismiss). */
  deploymentDied(deployment: IDeployment): void {
    const why = (deployment.error || '').split('\n')[0];
    const where = `${deployment.ref}'s endpoint (${deployment.id})`;
    this._show(null, `${where} stopped serving${why ? `: ${why}` : '.'}`, 'error', {
      autoClose: false
    });
  }

  /** A job (a score run, an image build) ended: succeeded, failed or cancelled. */
  jobEnded(job: IJob): void {
    const actions: Notification.IAction[] = [];
    const path = job.contents_path;
    if (job.status === 'succeeded' && path !== null && path !== undefined) {
      actions.push({
        label: 'Open output',
        caption: job.output_path,
        displayType: 'accent',
        callback: () => this._handlers.openPath(path)
      });
    }
    actions.push({ label: 'Show log', callback: () => this._handlers.showLog(job) });
    const outcome = job.status === 'succeeded' ? job.progress_text : job.error;
    const text = `${job.title}: job ${job.id} ${job.status}${outcome ? ` (${outcome})` : ''}.`;
    // A user's own cancel is no error: it is said plainly.
    const type =
      job.status === 'failed' ? 'error' : job.status === 'succeeded' ? 'success' : 'info';
    Notification.emit(text, type, {
      autoClose: type === 'error' ? false : AUTO_CLOSE_MS,
      actions
    });
  }

  private _show(
    id: string | null,
    message: string,
    type: Notification.TypeOptions,
    options: Notification.IOptions<null>
  ): string {
    if (id !== null && Notification.manager.update({ id, message, type, ...options })) {
      return id;
    }
    return Notification.emit(message, type, options);
  }

  private _pending: string | null = null;
  private _deploys = new Map<string, string>();
}
