/**
 * A small seeded PRNG (mulberry32), so a failing chaos run can be replayed with the same kill
 * points, cut points and choices by setting DBCRYPT_CHAOS_SEED. Each test derives its own stream
 * from the suite seed and its name, so adding a test does not shift the others.
 */
import { createHash } from "node:crypto";

export class Random {
  #state: number;

  constructor(seed: number, label: string) {
    this.#state = createHash("sha256").update(`${seed}:${label}`).digest().readUInt32LE(0);
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [min, max). */
  between(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** A whole number in [min, max]. */
  int(min: number, max: number): number {
    return Math.floor(this.between(min, max + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[Math.floor(this.next() * items.length)] as T;
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }
}
