// PAR + DPoP + private_key_jwt and the FAPI 2.0 profile against sqin on SQLite.
import { securitySuite } from './security.js';

securitySuite('sqlite');
