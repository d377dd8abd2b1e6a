// Records keyed by names users choose (columns, fields): a plain object answers `constructor` or
// `toString` from Object.prototype when it has no such key of its own, which would read as a value.

/** The value `record` holds under `key` itself; undefined when it has none (or no record). */
export function own<T>(record: Readonly<Record<string, T>> | null | undefined, key: string): T | undefined {
  return record != null && Object.hasOwn(record, key) ? record[key] : undefined;
}
