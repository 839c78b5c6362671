import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Where the server extension mounts its REST API. */
export const API_NAMESPACE = 'sparkserve/api/v1';

/** The answer of `GET sparkserve/api/v1/status`. */
export interface IStatus {
  version: string;
  home: string;
  repository: {
    models: number;
    versions: number;
    schema_version: number;
  };
}

/** An error the UI can show as it is: the server's message, or what is wrong with the setup. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number
  ) {
    super(message);
  }
}

/** Call the sparkserve REST API; every failure becomes an ApiError with a readable message. */
export async function requestAPI<T>(endPoint: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError('NETWORK_ERROR', `The Jupyter server could not be reached: ${error}`);
  }
  const text = await response.text();
  let body: any = null;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (response.status === 404 && (body === null || body.error === undefined)) {
    throw new ApiError(
      'EXTENSION_MISSING',
      'The jupyter_sparkserve server extension is not installed or not enabled in this Jupyter ' +
        'server. Run `jupyter server extension enable jupyter_sparkserve` and restart JupyterLab.',
      404
    );
  }
  if (!response.ok) {
    const message = body?.message ?? (response.statusText || `HTTP ${response.status}`);
    throw new ApiError(body?.error ?? 'HTTP_ERROR', message, response.status);
  }
  return body as T;
}
