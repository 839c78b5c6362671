import { api, errorMessage, IJob, JobStatus } from './api';
import { button, el } from './dom';

/** Statuses of a job that is not over yet: the view polls while one is listed. */
const ACTIVE: ReadonlySet<JobStatus> = new Set<JobStatus>(['queued', 'running']);
const POLL_MS = 1000;
const JOBS_SHOWN = 20;
const LOG_LINES = 200;

export interface IJobsViewOptions {
  onError: (message: string | null) => void;
}

/** One job: status, progress, rows, and its log on demand. */
class JobRow {
  readonly node: HTMLElement;

  constructor(
    job: IJob,
    private readonly _view: JobsView
  ) {
    this._status = el('span', {
      className: 'jp-SparkserveJob-status',
      testId: 'sparkserve-job-status'
    });
    this._title = el('span', { className: 'jp-SparkserveJob-title' });
    this._rows = el('span', { className: 'jp-SparkserveJob-rows', testId: 'sparkserve-job-rows' });
    this._bar = el('div', { className: 'jp-SparkserveJob-bar' });
    this._progress = el(
      'div',
      {
        className: 'jp-SparkserveJob-progress',
        attrs: { role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }
      },
      this._bar
    );
    this._error = el('p', { className: 'jp-SparkserveJob-error', testId: 'sparkserve-job-error' });
    this._logButton = button('Log', () => void this._toggleLog(), {
      className: 'jp-SparkserveJob-logButton',
      testId: 'sparkserve-job-log-button'
    });
    this._cancelButton = button('Cancel', () => void this._cancel(), {
      className: 'jp-SparkserveJob-cancel',
      testId: 'sparkserve-job-cancel'
    });
    this._log = el('pre', { className: 'jp-SparkserveJob-log', testId: 'sparkserve-job-log' });
    this._log.hidden = true;
    this.node = el(
      'div',
      { className: 'jp-SparkserveJob', testId: 'sparkserve-job', dataset: { jobId: job.id } },
      el('div', { className: 'jp-SparkserveJob-header' }, this._status, this._title, this._rows),
      this._progress,
      this._error,
      el('div', { className: 'jp-SparkserveJob-buttons' }, this._logButton, this._cancelButton),
      this._log
    );
    this.update(job);
  }

  get active(): boolean {
    return ACTIVE.has(this._job.status);
  }

  update(job: IJob): void {
    this._job = job;
    this.node.dataset.status = job.status;
    this._status.textContent = job.status;
    this._status.className = `jp-SparkserveJob-status jp-SparkserveJob-status-${job.status}`;
    this.node.dataset.kind = job.kind;
    // The title and the progress line are worded by the core, for score runs and builds.
    this._title.textContent = job.title;
    this._title.title = job.output_path;
    this._rows.textContent = job.progress_text;
    const fraction = job.status === 'succeeded' ? 1 : job.fraction;
    this._progress.classList.toggle('jp-mod-indeterminate', fraction === null && this.active);
    const percent = Math.round(100 * Math.min(1, Math.max(0, fraction ?? 0)));
    this._bar.style.width = `${percent}%`;
    this._progress.setAttribute('aria-valuenow', String(percent));
    this._error.textContent = job.error;
    this._error.hidden = !job.error;
    this._cancelButton.hidden = !this.active;
    this._cancelButton.disabled = job.cancel_requested;
    if (!this._log.hidden) {
      void this._readLog();
    }
  }

  private async _toggleLog(): Promise<void> {
    this._log.hidden = !this._log.hidden;
    this._logButton.textContent = this._log.hidden ? 'Log' : 'Hide log';
    if (!this._log.hidden) {
      await this._readLog();
    }
  }

  private async _readLog(): Promise<void> {
    try {
      const { log } = await api.jobLog(this._job.id, LOG_LINES);
      this._log.textContent = log || '(the log is empty)';
      this._log.scrollTop = this._log.scrollHeight;
    } catch (error) {
      this._log.textContent = errorMessage(error);
    }
  }

  private async _cancel(): Promise<void> {
    this._cancelButton.disabled = true;
    try {
      this.update(await api.cancelJob(this._job.id));
    } catch (error) {
      this._view.reportError(errorMessage(error));
    }
    await this._view.refresh();
  }

  private _job!: IJob;
  private _status: HTMLElement;
  private _title: HTMLElement;
  private _rows: HTMLElement;
  private _progress: HTMLElement;
  private _bar: HTMLElement;
  private _error: HTMLElement;
  private _logButton: HTMLButtonElement;
  private _cancelButton: HTMLButtonElement;
  private _log: HTMLElement;
}

/** The jobs view: the latest jobs, polled while one of them is queued or running. */
export class JobsView {
  readonly node: HTMLElement;

  constructor(options: IJobsViewOptions) {
    this._options = options;
    this._list = el('div', { className: 'jp-SparkserveJobs-list', testId: 'sparkserve-jobs' });
    this._empty = el('p', { className: 'jp-SparkserveJobs-empty', text: 'No job yet.' });
    this.node = el(
      'section',
      { className: 'jp-SparkserveJobs' },
      el('h3', { className: 'jp-SparkservePanel-sectionTitle', text: 'Jobs' }),
      this._empty,
      this._list
    );
  }

  /** Read the jobs again; poll again soon while one is active. */
  async refresh(): Promise<void> {
    window.clearTimeout(this._timer);
    if (this._disposed) {
      return;
    }
    try {
      const { items } = await api.listJobs(JOBS_SHOWN);
      this._render(items);
    } catch (error) {
      this.reportError(errorMessage(error));
    }
    if (!this._disposed && [...this._rows.values()].some(row => row.active)) {
      this._timer = window.setTimeout(() => void this.refresh(), POLL_MS);
    }
  }

  /** Show a job the sidebar just started, and follow it. */
  async track(job: IJob): Promise<void> {
    const others = [...this._jobs.values()].filter(other => other.id !== job.id);
    this._render([job, ...others]);
    await this.refresh();
  }

  reportError(message: string): void {
    this._options.onError(message);
  }

  dispose(): void {
    this._disposed = true;
    window.clearTimeout(this._timer);
  }

  private _render(jobs: IJob[]): void {
    const seen = new Set<string>();
    const nodes: HTMLElement[] = [];
    for (const job of jobs.slice(0, JOBS_SHOWN)) {
      seen.add(job.id);
      this._jobs.set(job.id, job);
      let row = this._rows.get(job.id);
      if (row === undefined) {
        row = new JobRow(job, this);
        this._rows.set(job.id, row);
      } else {
        row.update(job);
      }
      nodes.push(row.node);
    }
    for (const id of [...this._rows.keys()]) {
      if (!seen.has(id)) {
        this._rows.delete(id);
        this._jobs.delete(id);
      }
    }
    this._list.replaceChildren(...nodes);
    this._empty.hidden = nodes.length > 0;
  }

  private _options: IJobsViewOptions;
  private _list: HTMLElement;
  private _empty: HTMLElement;
  private _rows = new Map<string, JobRow>();
  private _jobs = new Map<string, IJob>();
  private _timer = 0;
  private _disposed = false;
}
