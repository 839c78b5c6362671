import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { API_NAMESPACE, IDeployOptions, IScoreSettings } from './api';

/** What the server refuses in a dialog's values: its message, and the field at fault when
 * the core names one (`output`, a deploy option such as `port`). */
export interface IProblem {
  message: string;
  field?: string;
}

/**
 * Ask the server whether a deploy or a score job would be accepted (`POST checks/...`): the
 * same core checks as the real call, with nothing started. Null when it would be; else the
 * problem, kept with its `field` so that a dialog shows it next to that field.
 */
async function check(endPoint: string, body: unknown): Promise<IProblem | null> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body)
      },
      settings
    );
  } catch (error) {
    return { message: `The Jupyter server could not be reached: ${error}` };
  }
  if (response.ok) {
    return null;
  }
  let found: { message?: string; field?: string } | null = null;
  try {
    found = await response.json();
  } catch {
    found = null;
  }
  return {
    message: found?.message ?? (response.statusText || `HTTP ${response.status}`),
    field: found?.field
  };
}

export const checks = {
  deploy: (ref: string, target: string, options: IDeployOptions): Promise<IProblem | null> =>
    check('checks/deploy', { ref, target, options }),

  score: (spec: IScoreSettings): Promise<IProblem | null> => check('checks/score', { spec })
};
