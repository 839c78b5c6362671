import { Widget } from '@lumino/widgets';

import { ApiError, IStatus, requestAPI } from './api';

/**
 * The sparkserve sidebar. For now it shows which repository the server uses and how many
 * models it holds; the model list and Actions menu grow here.
 */
export class SparkservePanel extends Widget {
  constructor() {
    super();
    this.id = 'jp-sparkserve-sidebar';
    this.addClass('jp-SparkservePanel');
    this.title.caption = 'Model serving (jupyter_sparkserve)';

    const header = document.createElement('div');
    header.className = 'jp-SparkservePanel-header';
    const title = document.createElement('h2');
    title.textContent = 'Models';
    this._refreshButton = document.createElement('button');
    this._refreshButton.className = 'jp-SparkservePanel-refresh jp-mod-styled';
    this._refreshButton.textContent = 'Refresh';
    this._refreshButton.title = 'Read the repository again';
    this._refreshButton.addEventListener('click', () => void this.refresh());
    header.append(title, this._refreshButton);

    this._body = document.createElement('div');
    this._body.className = 'jp-SparkservePanel-body';
    this.node.append(header, this._body);
  }

  /** Read the server status and show it, or show why it could not be read. */
  async refresh(): Promise<void> {
    this._refreshButton.disabled = true;
    try {
      const status = await requestAPI<IStatus>('status');
      this._renderStatus(status);
    } catch (error) {
      this._renderError(error instanceof ApiError ? error.message : String(error));
    } finally {
      this._refreshButton.disabled = false;
    }
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  private _renderStatus(status: IStatus): void {
    const { models, versions } = status.repository;
    this._body.replaceChildren(
      this._line(
        'jp-SparkservePanel-count',
        `${models} ${models === 1 ? 'model' : 'models'}, ${versions} ${
          versions === 1 ? 'version' : 'versions'
        }`
      ),
      this._line('jp-SparkservePanel-home', `Repository: ${status.home}`),
      this._line('jp-SparkservePanel-version', `jupyter_sparkserve ${status.version}`)
    );
  }

  private _renderError(message: string): void {
    this._body.replaceChildren(this._line('jp-SparkservePanel-error', message));
  }

  private _line(className: string, text: string): HTMLElement {
    const element = document.createElement('p');
    element.className = className;
    element.textContent = text;
    return element;
  }

  private _body: HTMLDivElement;
  private _refreshButton: HTMLButtonElement;
}
