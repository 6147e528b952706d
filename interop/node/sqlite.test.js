// openid-client against sqin on SQLite.
import { suite } from './suite.js';

suite('sqlite');
