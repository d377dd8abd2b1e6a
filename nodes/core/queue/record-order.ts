// Which records wait for one of their events to come again (it failed: a retry, the destination
// down), so that their later events do not overtake it. Kept by the job rather than by a connector
// node, so a connector redeployed while a record waits writes it in order too; an event settled
// another way (another copy of it was written, after a deploy) stops being waited for.

export class RecordOrder {
  /** Per record key, the seqs of its failed events that will come again. */
  private readonly pending = new Map<string, number[]>();
  /** Per seq, its record key. */
  private readonly keyOf = new Map<number, string>();

  /** The event `seq` of record `key` failed and will come again: the record's later events wait. */
  hold(key: string, seq: number): void {
    if (this.keyOf.has(seq)) return;
    const seqs = this.pending.get(key);
    if (seqs) seqs.push(seq);
    else this.pending.set(key, [seq]);
    this.keyOf.set(seq, key);
  }

  /** The earliest event the record waits for; its events after it must not be written before it. */
  waitsFor(key: string): number | undefined {
    const seqs = this.pending.get(key);
    return seqs === undefined ? undefined : Math.min(...seqs);
  }

  /** The event came again (it is being written) or was settled: no longer waited for. True when it was. */
  release(seq: number): boolean {
    const key = this.keyOf.get(seq);
    if (key === undefined) return false;
    this.keyOf.delete(seq);
    const seqs = this.pending.get(key)!.filter((s) => s !== seq);
    if (seqs.length === 0) this.pending.delete(key);
    else this.pending.set(key, seqs);
    return true;
  }

  get size(): number {
    return this.keyOf.size;
  }
}
