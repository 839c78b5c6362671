import { api, errorMessage, IJob, JobStatus } from './api';
import { button, el } from './dom';
import { Rereader } from './rereader';
import { collapsibleSection } from './section';

/** Statuses of a job that is not over yet. */
const ACTIVE: ReadonlySet<JobStatus> = new Set<JobStatus>(['queued', 'running']);
/**
 * Changes come through the change counters; while a job is listed as active the view also
 * reads the jobs this often, since only a read finds a job whose process died, and its time
 * spent goes on.
 */
const ACTIVE_POLL_MS = 5000;
const JOBS_SHOWN = 20;
const LOG_LINES = 200;

export interface IJobsViewOptions {
  onError: (message: string | null) => void;
  /** A job the view saw running (or saw first after it began watching) has ended. */
  onEnded: (job: IJob) => void;
  /** Open a path of the Jupyter server's files (a job's output). */
  openPath: (path: string) => void;
}

/** "42 s", "3 min 5 s", "2 h 4 min": a job's time spent. */
export function formatSeconds(seconds: number): string {
  const whole = Math.round(seconds);
  if (whole < 60) {
    return `${whole} s`;
  }
  if (whole < 3600) {
    return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  }
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
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
        attrs: {
          role: 'progressbar',
          'aria-label': 'Progress',
          'aria-valuemin': '0',
          'aria-valuemax': '100'
        }
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
    this._when = el('span', { className: 'jp-SparkserveJob-when', testId: 'sparkserve-job-when' });
    this._output = el('span', { className: 'jp-SparkserveJob-output' });
    this.node = el(
      'div',
      { className: 'jp-SparkserveJob', testId: 'sparkserve-job', dataset: { jobId: job.id } },
      el('div', { className: 'jp-SparkserveJob-header' }, this._status, this._title, this._rows),
      el(
        'div',
        { className: 'jp-SparkserveJob-facts' },
        el('span', { className: 'jp-SparkserveJob-id', text: job.id, title: 'Job id' }),
        this._when
      ),
      this._output,
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
    // The core's share: 1 only once the job succeeded, below 1 while it runs or after a stop.
    const fraction = job.fraction;
    const indeterminate = fraction === null && this.active;
    this._progress.classList.toggle('jp-mod-indeterminate', indeterminate);
    const percent = Math.round(100 * Math.min(1, Math.max(0, fraction ?? 0)));
    this._bar.style.width = `${percent}%`;
    if (indeterminate) {
      this._progress.removeAttribute('aria-valuenow'); // ARIA: no value while unknown
    } else {
      this._progress.setAttribute('aria-valuenow', String(percent));
    }
    this._error.textContent = job.error;
    this._error.hidden = !job.error;
    this._renderWhen(job);
    this._renderOutput(job);
    this._cancelButton.hidden = !this.active;
    this._cancelButton.disabled = job.cancel_requested;
    if (!this._log.hidden) {
      void this._readLog();
    }
  }

  private _renderWhen(job: IJob): void {
    const started = new Date(job.started_at ?? job.created_at);
    const by = job.created_by ? ` by ${job.created_by}` : '';
    const parts = [`${job.started_at ? 'started' : 'queued'} ${started.toLocaleTimeString()}${by}`];
    if (job.seconds !== null) {
      parts.push(formatSeconds(job.seconds));
    }
    this._when.textContent = parts.join(' · ');
    this._when.title = started.toLocaleString();
  }

  /** The output as a link that opens it when the server can (it is under its root). */
  private _renderOutput(job: IJob): void {
    const path = job.contents_path;
    const open = job.status === 'succeeded' && path !== null && path !== undefined;
    const key = `${open}:${job.output_path}`;
    if (key === this._outputKey) {
      return;
    }
    this._outputKey = key;
    if (open) {
      const link = el('a', {
        className: 'jp-SparkserveJob-outputLink',
        testId: 'sparkserve-job-output',
        text: job.output_path,
        title: `Open ${path || 'the root folder'}`,
        attrs: { href: '#' }
      });
      link.addEventListener('click', event => {
        event.preventDefault();
        this._view.openPath(path);
      });
      this._output.replaceChildren(link);
    } else {
      this._output.replaceChildren(
        el('span', { testId: 'sparkserve-job-output', text: job.output_path })
      );
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
  private _when: HTMLElement;
  private _output: HTMLElement;
  private _outputKey = '';
}

/** The jobs view: the latest jobs, polled while one of them is queued or running. */
export class JobsView {
  readonly node: HTMLElement;

  constructor(options: IJobsViewOptions) {
    this._options = options;
    this._list = el('div', { className: 'jp-SparkserveJobs-list', testId: 'sparkserve-jobs' });
    this._empty = el('p', { className: 'jp-SparkserveJobs-empty', text: 'No job yet.' });
    this._clear = button('Clear finished', () => void this._clearFinished(), {
      className: 'jp-SparkserveJobs-clear',
      testId: 'sparkserve-jobs-clear',
      title: 'Remove the jobs that have ended from the list (their outputs stay)'
    });
    this._clear.disabled = true;
    this.node = collapsibleSection(
      'Jobs',
      { className: 'jp-SparkserveJobs', tools: [this._clear] },
      this._empty,
      this._list
    ).node;
  }

  /** Read the jobs again (one read at a time; a call during a read reads once more after). */
  async refresh(): Promise<void> {
    await this._reads.run();
  }

  /** Show a job the sidebar just started, and follow it. */
  async track(job: IJob): Promise<void> {
    this._seen.set(job.id, job.status);
    const others = [...this._jobs.values()].filter(other => other.id !== job.id);
    this._render([job, ...others]);
    await this.refresh();
  }

  openPath(path: string): void {
    this._options.openPath(path);
  }

  reportError(message: string): void {
    this._options.onError(message);
  }

  private async _read(): Promise<void> {
    window.clearTimeout(this._timer);
    if (this._disposed) {
      return;
    }
    try {
      const { items } = await api.listJobs(JOBS_SHOWN);
      this._noticeEnds(items);
      this._render(items);
    } catch (error) {
      this.reportError(errorMessage(error));
    }
    if (!this._disposed && [...this._rows.values()].some(row => row.active)) {
      this._timer = window.setTimeout(() => void this.refresh(), ACTIVE_POLL_MS);
    }
  }

  /**
   * Jobs that ended since the last read: one seen active, or one first seen ended after the
   * view had its first answer (a short job started from a notebook between two reads).
   */
  private _noticeEnds(jobs: IJob[]): void {
    for (const job of jobs) {
      const before = this._seen.get(job.id);
      const ended = !ACTIVE.has(job.status);
      if (ended && (before === undefined ? this._baseline : ACTIVE.has(before))) {
        this._options.onEnded(job);
      }
      this._seen.set(job.id, job.status);
    }
    this._baseline = true;
  }

  private async _clearFinished(): Promise<void> {
    this._clear.disabled = true;
    try {
      await api.clearFinishedJobs();
    } catch (error) {
      this.reportError(errorMessage(error));
    }
    await this.refresh();
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
    this._clear.disabled = ![...this._rows.values()].some(row => !row.active);
  }

  private _options: IJobsViewOptions;
  private _list: HTMLElement;
  private _empty: HTMLElement;
  private _rows = new Map<string, JobRow>();
  private _jobs = new Map<string, IJob>();
  /** Each job's status as last read, to tell which ended since. */
  private _seen = new Map<string, JobStatus>();
  private _baseline = false;
  private _clear: HTMLButtonElement;
  private _reads = new Rereader(() => this._read());
  private _timer = 0;
  private _disposed = false;
}
