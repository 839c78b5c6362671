import { ApiError, errorMessage, IDeployOptions, IScoreSettings, requestAPI } from './api';

/** What the server refuses in a dialog's values: its message, and the field at fault when
 * the core names one (`output`, a deploy option such as `port`, a build's `tag`). */
export interface IProblem {
  message: string;
  field?: string;
}

/** Anything a call threw, as a dialog shows it: next to the field the server named, if any. */
export function problemOf(error: unknown): IProblem {
  const field = error instanceof ApiError ? error.field : undefined;
  return field ? { message: errorMessage(error), field } : { message: errorMessage(error) };
}

/**
 * Ask the server whether a deploy or a score job would be accepted (`POST checks/...`): the
 * same core checks as the real call, with nothing started. Null when it would be; else the
 * problem, kept with its `field` so that a dialog shows it next to that field.
 */
async function check(endPoint: string, body: unknown): Promise<IProblem | null> {
  try {
    await requestAPI(endPoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    });
    return null;
  } catch (error) {
    return problemOf(error);
  }
}

export const checks = {
  deploy: (ref: string, target: string, options: IDeployOptions): Promise<IProblem | null> =>
    check('checks/deploy', { ref, target, options }),

  score: (spec: IScoreSettings): Promise<IProblem | null> => check('checks/score', { spec })
};
