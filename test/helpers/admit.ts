/**
 * Admission for tests that run real control and worker processes but write jobs from the test
 * process: the jobs are admitted as the control plane would admit them (contract, input schema,
 * a signed authority record), with the control plane's own key from its keys directory.
 */
import { readDeployment } from '../../src/cli/control-setup.js';
import { Admission, type Submission } from '../../src/control/admission.js';
import type { Principal } from '../../src/control/api-keys.js';
import { loadSigningKey } from '../../src/control/signing-keys.js';
import type { Store } from '../../src/ledger/store.js';
import type { SubmitResult } from '../../src/ledger/types.js';

/** Submit through admission with the control key in `keysDir`, as a test admin of `tenant`. */
export function signedAdmission(
  store: Store,
  keysDir: string,
): (tenant: string, submissions: Submission[]) => Promise<SubmitResult[]> {
  const admission = new Admission(store, {
    key: loadSigningKey(keysDir),
    deploymentId: readDeployment(keysDir),
  });
  return (tenant, submissions) => {
    const principal: Principal = { tenant, keyId: 'test-admission', roles: ['admin'] };
    return admission.submit(principal, submissions);
  };
}
