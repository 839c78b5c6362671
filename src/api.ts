import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Where the server extension mounts its REST API. */
export const API_NAMESPACE = 'sparkserve/api/v1';

/**
 * The release this sidebar belongs to (package.json's version; tests/test_sidebar.py holds the
 * two equal). The server extension reports its own in `status`; a difference means JupyterLab
 * was not restarted after an upgrade, or the two come from different installs.
 */
export const FRONTEND_VERSION = '0.1.0';

/** What a model version offers now, computed by the core (`jupyter_sparkserve.lifecycle`). */
export type Action =
  'register' | 'reregister' | 'deploy' | 'undeploy' | 'score' | 'snippets' | 'delete';

export interface ITargetStatus {
  target: string;
  usable: boolean;
  detail: string;
}

/** The answer of `GET status`. */
export interface IStatus {
  version: string;
  versions?: { sparkserve: string; mlflow: string; python: string };
  home: string;
  repository: {
    models: number;
    versions: number;
    schema_version: number;
  };
  targets?: ITargetStatus[];
}

/** The state and enabled actions every version (and a model's latest version) carries. */
export interface IVersionState {
  registered: boolean;
  deployed: boolean;
  actions: string[];
}

export interface IModelSummary extends IVersionState {
  name: string;
  latest_version: number;
  version_count: number;
  flavor: string;
  description: string;
  tags: Record<string, string>;
  aliases: Record<string, number>;
  created_at: string;
  updated_at: string;
}

export interface IModelPage {
  items: IModelSummary[];
  total: number;
  offset: number;
  limit: number;
  next_offset: number | null;
}

export interface IModelVersion extends IVersionState {
  name: string;
  version: number;
  ref: string;
  description: string;
  flavor: string;
  flavors: string[];
  tags: Record<string, string>;
  metrics: Record<string, number>;
  aliases: string[];
  has_input_example: boolean;
  source: string;
  size_bytes: number;
  mlflow_version: string;
  created_at: string;
}

export interface IModelDetails {
  name: string;
  latest_version: number;
  aliases: Record<string, number>;
  created_at: string;
  updated_at: string;
  versions: IModelVersion[];
}

export interface IRegisterResult {
  registration: { ref: string; mlflow_name: string; mlflow_version: number; model_uri: string };
  version: IModelVersion;
}

export interface ISnippet {
  language: 'python' | 'shell';
  title: string;
  code: string;
  /** The code as a notebook cell runs it (a shell command as an escaped IPython `!` line). */
  cell: string;
}

export type DeploymentStatus = 'starting' | 'running' | 'stopped' | 'failed';

export interface IDeployment {
  id: string;
  ref: string;
  name: string;
  version: number;
  target: string;
  status: DeploymentStatus;
  url: string;
  model_uri: string;
  error: string;
  created_at: string;
  updated_at: string;
}

export interface IDeployOptions {
  host?: string;
  port?: number | null;
  token?: string | null;
}

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface IJobSpec {
  model: string;
  input: string;
  output: string;
  engine: string;
  keep_columns: string[] | null;
  prediction_column: string;
}

export interface IJob {
  id: string;
  kind: string;
  workflow_id: number | null;
  workflow_name: string;
  spec: IJobSpec;
  status: JobStatus;
  cancel_requested: boolean;
  rows_done: number;
  rows_total: number | null;
  fraction: number | null;
  output_path: string;
  error: string;
  seconds: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/** What the sidebar's Score dialog sends (`POST jobs`); the server checks every value. */
export interface IScoreSettings {
  model: string;
  input: string;
  output: string;
  engine: string;
  keep_columns?: string;
  prediction_column?: string;
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

/** A readable message for anything a call may throw. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError || error instanceof Error) {
    return error.message;
  }
  return String(error);
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

function query(parameters: Record<string, string | number | boolean | undefined>): string {
  const parts = Object.entries(parameters)
    .filter(([, value]) => value !== undefined && value !== '')
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

function post<T>(endPoint: string, body?: unknown): Promise<T> {
  return requestAPI<T>(endPoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
}

function versionPath(name: string, version: number): string {
  return `models/${encodeURIComponent(name)}/versions/${version}`;
}

/** The REST routes of openapi.yaml the sidebar uses, typed. */
export const api = {
  status: (): Promise<IStatus> => requestAPI<IStatus>('status'),

  listModels: (options: {
    limit: number;
    offset: number;
    nameContains?: string;
  }): Promise<IModelPage> =>
    requestAPI<IModelPage>(
      'models' +
        query({ limit: options.limit, offset: options.offset, name_contains: options.nameContains })
    ),

  getModel: (name: string): Promise<IModelDetails> =>
    requestAPI<IModelDetails>(`models/${encodeURIComponent(name)}`),

  deleteVersion: (name: string, version: number): Promise<IModelVersion> =>
    requestAPI<IModelVersion>(versionPath(name, version), { method: 'DELETE' }),

  register: (name: string, version: number): Promise<IRegisterResult> =>
    post<IRegisterResult>(`${versionPath(name, version)}/register`),

  reregister: (name: string, version: number): Promise<IRegisterResult> =>
    post<IRegisterResult>(`${versionPath(name, version)}/reregister`),

  versionSnippets: (name: string, version: number): Promise<{ snippets: ISnippet[] }> =>
    requestAPI<{ snippets: ISnippet[] }>(`${versionPath(name, version)}/snippets`),

  listDeployments: (all = false): Promise<{ items: IDeployment[] }> =>
    requestAPI<{ items: IDeployment[] }>('deployments' + query({ all: all ? 'true' : undefined })),

  deploy: (ref: string, target: string, options: IDeployOptions): Promise<IDeployment> =>
    post<IDeployment>('deployments', { ref, target, options }),

  getDeployment: (id: string): Promise<IDeployment> =>
    requestAPI<IDeployment>(`deployments/${encodeURIComponent(id)}`),

  undeploy: (id: string): Promise<IDeployment> =>
    requestAPI<IDeployment>(`deployments/${encodeURIComponent(id)}`, { method: 'DELETE' }),

  deploymentSnippets: (id: string): Promise<{ snippets: ISnippet[] }> =>
    requestAPI<{ snippets: ISnippet[] }>(`deployments/${encodeURIComponent(id)}/snippets`),

  submitJob: (spec: IScoreSettings): Promise<IJob> => post<IJob>('jobs', { spec }),

  listJobs: (limit: number): Promise<{ items: IJob[] }> =>
    requestAPI<{ items: IJob[] }>('jobs' + query({ limit })),

  jobLog: (id: string, tail?: number): Promise<{ id: string; log: string }> =>
    requestAPI<{ id: string; log: string }>(`jobs/${encodeURIComponent(id)}/log` + query({ tail })),

  cancelJob: (id: string): Promise<IJob> => post<IJob>(`jobs/${encodeURIComponent(id)}/cancel`)
};
