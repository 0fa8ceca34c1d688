import { describe, expect, it } from 'vitest';
import { isRetryable } from '../../src/adapters/pg/sqlstate.js';

describe('a full lock table is transient', () => {
  it('53200 (out of shared memory) is retried like 53300 (too many connections); a syntax error is not', () => {
    expect(isRetryable({ code: '53200', message: 'out of shared memory' })).toBe(true);
    expect(isRetryable({ code: '53300', message: 'too many connections' })).toBe(true);
    expect(isRetryable({ code: '42601', message: 'syntax error' })).toBe(false);
  });
});
