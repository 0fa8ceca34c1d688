/** Assertions shared by test files. */
import { expect } from 'vitest';

/** The error a promise rejects with (fails the test when it resolves). */
export async function rejection<T extends Error>(p: Promise<unknown>, type: new (...args: any[]) => T): Promise<T> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(type);
  return e as T;
}
