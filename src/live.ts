import { api, ChangeTopic, IChanges } from './api';

/** How often the counters are read while the sidebar is on screen (a change shows within a
 * second, with the re-read: tests/test_shared_servers.py; one small query a read), and
 * otherwise. */
export const VISIBLE_POLL_MS = 300;
export const HIDDEN_POLL_MS = 5000;

export interface IChangeWatcherOptions {
  /** The topics whose counter moved since the last read; awaited before the next read. */
  onChange: (topics: Set<ChangeTopic>) => Promise<void>;
  /** Whether the sidebar is on screen: it polls often only then. */
  visible: () => boolean;
}

/**
 * Follows the core's change counters (`GET changes`): a small read every 0.3 s while the
 * sidebar is shown (every few seconds while it is not, so that a job's end still raises its
 * notification), and a call with the topics that moved, which is all the sidebar reads again.
 * A model saved from a notebook or the CLI thus shows without a Refresh.
 */
export class ChangeWatcher {
  constructor(private readonly _options: IChangeWatcherOptions) {}

  start(): void {
    if (!this._started) {
      this._started = true;
      document.addEventListener('visibilitychange', this._onVisibility);
      void this._poll();
    }
  }

  /** Read the counters now (the sidebar became visible). */
  poke(): void {
    if (this._started && !this._disposed && !this._polling) {
      window.clearTimeout(this._timer);
      void this._poll();
    }
  }

  dispose(): void {
    this._disposed = true;
    window.clearTimeout(this._timer);
    document.removeEventListener('visibilitychange', this._onVisibility);
  }

  private _onVisibility = (): void => {
    if (!document.hidden) {
      this.poke();
    }
  };

  private async _poll(): Promise<void> {
    this._polling = true;
    try {
      const now = await api.changes();
      const moved = this._moved(now);
      this._last = now;
      if (moved.size > 0) {
        await this._options.onChange(moved);
      }
    } catch {
      // A server without the route, or one restarting: the reads that matter report errors
      // in the banner; this only tries again later.
    } finally {
      this._polling = false;
    }
    if (!this._disposed) {
      const shown = this._options.visible() && !document.hidden;
      this._timer = window.setTimeout(
        () => void this._poll(),
        shown ? VISIBLE_POLL_MS : HIDDEN_POLL_MS
      );
    }
  }

  /** The topics that moved since the last read; none on the first (that is the baseline). */
  private _moved(now: IChanges): Set<ChangeTopic> {
    const moved = new Set<ChangeTopic>();
    if (this._last !== null) {
      for (const topic of Object.keys(now) as ChangeTopic[]) {
        if (now[topic] !== this._last[topic]) {
          moved.add(topic);
        }
      }
    }
    return moved;
  }

  private _last: IChanges | null = null;
  private _timer = 0;
  private _started = false;
  private _polling = false;
  private _disposed = false;
}
