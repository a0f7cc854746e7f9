/**
 * A duration in the one largest unit that holds it exactly (250ms, 3s, 150s, 45m, 2h): the form
 * the duration flags accept, so a message that names a flag shows a value that can be passed to it.
 */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
