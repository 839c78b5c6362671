import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { components } from './schema';

/** Where the server extension mounts its REST API. */
export const API_NAMESPACE = 'sparkserve/api/v1';

/**
 * The release this sidebar belongs to (package.json's version; tests/test_sidebar.py holds the
 * two equal). The server extension reports its own in `status`; a difference means JupyterLab
 * was not restarted after an upgrade, or the two come from different installs.
 */
export const FRONTEND_VERSION = '0.1.0';

/**
 * The shapes of the REST API, generated from openapi.yaml (`jlpm build:types` writes
 * src/schema.d.ts; tests/test_ui.py holds the file to the spec). Nothing here restates one.
 */
type Schemas = components['schemas'];

/** What a model version offers now, computed by the core (`jupyter_sparkserve.lifecycle`). */
export type Action = Schemas['Action'];
export type ITargetOption = Schemas['TargetOption'];
export type ITargetStatus = Schemas['TargetStatus'];
export type IEngineStatus = Schemas['EngineStatus'];
/** The answer of `GET status`. */
export type IStatus = Schemas['Status'];
export type IModelSummary = Schemas['ModelSummary'];
/** The state and enabled actions every version (and a model's latest version) carries. */
export type IVersionState = Pick<IModelSummary, 'registered' | 'deployed' | 'actions'>;
export type IModelPage = Schemas['ModelPage'];
export type IModelVersion = Schemas['ModelVersion'];
export type IModelDetails = Schemas['ModelDetails'];
export type IRegisterResult = Schemas['RegisterResult'];
export type ISnippet = Schemas['Snippet'];
export type ISnippets = Schemas['Snippets'];
export type IDeployment = Schemas['Deployment'];
export type DeploymentStatus = IDeployment['status'];
/** What the user can do about an error, as the core says it; the sidebar offers a button. */
export type IRemedy = Schemas['Remedy'];
export type JobStatus = Schemas['JobStatus'];
export type IJob = Schemas['Job'];
export type IJobSpec = Schemas['WorkflowSpec'];
/** A counter per topic, moved by every write to it from any face (`GET changes`). */
export type IChanges = Schemas['Changes'];
export type ChangeTopic = keyof IChanges;
/** What the sidebar's Score dialog sends (`POST jobs`); the server checks every value. */
export type IScoreSettings = Schemas['WorkflowSettings'];
/** What the Build image dialog sends; the server checks every value. */
export type IImageBuildRequest = Schemas['ImageBuildRequest'];
/** What the Kubernetes manifest dialog sends. */
export type IKubernetesSettings = Schemas['KubernetesSettings'];
export type IKubernetesManifest = Schemas['KubernetesManifest'];
/** Where the Kubernetes dialog may save its manifests (`POST checks/manifest-file`). */
export type IFileCheckPassed = Schemas['FileCheckPassed'];
/** A target's options by name, as its `ITargetOption`s declare them. */
export type IDeployOptions = Record<string, string | number | boolean>;

/** An error the UI can show as it is: the server's message, or what is wrong with the setup;
 * `field`: the request field at fault when the core names one (a dialog shows it there). */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly remedy?: IRemedy,
    readonly field?: string
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
    throw new ApiError(
      body?.error ?? 'HTTP_ERROR',
      message,
      response.status,
      body?.remedy,
      body?.field || undefined
    );
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

  changes: (): Promise<IChanges> => requestAPI<IChanges>('changes'),

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

  /** Build the version's image as a job. */
  buildImage: (name: string, version: number, settings: IImageBuildRequest): Promise<IJob> =>
    post<IJob>(`${versionPath(name, version)}/image`, settings),

  kubernetesManifest: (
    name: string,
    version: number,
    settings: IKubernetesSettings
  ): Promise<IKubernetesManifest> =>
    post<IKubernetesManifest>(`${versionPath(name, version)}/kubernetes`, settings),

  /** May the manifests be saved at `path`, from the file browser's root? Its contents path;
   * else the core's refusal (`FILE_EXISTS` when the file exists and `overwrite` is false). */
  checkManifestFile: (path: string, overwrite = false): Promise<IFileCheckPassed> =>
    post<IFileCheckPassed>('checks/manifest-file', { path, overwrite }),

  /** A serving version's endpoint snippets, else a registered one's offline snippet. */
  versionSnippets: (name: string, version: number): Promise<ISnippets> =>
    requestAPI<ISnippets>(`${versionPath(name, version)}/snippets`),

  /** The ones up; `attention`: and the failed ones not dismissed; `all`: every one. */
  listDeployments: (
    options: { all?: boolean; attention?: boolean } = {}
  ): Promise<{ items: IDeployment[] }> =>
    requestAPI<{ items: IDeployment[] }>(
      'deployments' +
        query({
          all: options.all ? 'true' : undefined,
          attention: options.attention ? 'true' : undefined
        })
    ),

  deploy: (ref: string, target: string, options: IDeployOptions): Promise<IDeployment> =>
    post<IDeployment>('deployments', { ref, target, options }),

  getDeployment: (id: string): Promise<IDeployment> =>
    requestAPI<IDeployment>(`deployments/${encodeURIComponent(id)}`),

  undeploy: (id: string): Promise<IDeployment> =>
    requestAPI<IDeployment>(`deployments/${encodeURIComponent(id)}`, { method: 'DELETE' }),

  /** Forget an ended deployment's record; answers it as it was. */
  dismissDeployment: (id: string): Promise<IDeployment> =>
    post<IDeployment>(`deployments/${encodeURIComponent(id)}/dismiss`),

  deploymentSnippets: (id: string): Promise<ISnippets> =>
    requestAPI<ISnippets>(`deployments/${encodeURIComponent(id)}/snippets`),

  submitJob: (spec: IScoreSettings): Promise<IJob> => post<IJob>('jobs', { spec }),

  listJobs: (limit: number): Promise<{ items: IJob[] }> =>
    requestAPI<{ items: IJob[] }>('jobs' + query({ limit })),

  jobLog: (id: string, tail?: number): Promise<{ id: string; log: string }> =>
    requestAPI<{ id: string; log: string }>(`jobs/${encodeURIComponent(id)}/log` + query({ tail })),

  cancelJob: (id: string): Promise<IJob> => post<IJob>(`jobs/${encodeURIComponent(id)}/cancel`),

  /** Delete the records of every job that has ended; answers their ids. */
  clearFinishedJobs: (): Promise<{ items: string[] }> =>
    post<{ items: string[] }>('jobs/clear-finished')
};
