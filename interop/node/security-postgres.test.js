// PAR + DPoP + private_key_jwt and the FAPI 2.0 profile against sqin on
// PostgreSQL ($SQIN_TEST_POSTGRES, a fresh schema per run). Without
// PostgreSQL the suite is skipped, except under CI (CI set), where that is
// a failure.
import { securitySuite } from './security.js';
import { postgresProblem } from './harness.js';

const problem = await postgresProblem();
if (problem && process.env.CI) {
  throw new Error(`PostgreSQL unreachable under CI: ${problem}`);
}
securitySuite('postgres', { skip: problem ? `PostgreSQL unreachable: ${problem}` : false });
