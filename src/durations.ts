/** A duration the way the flags take it (250ms, 3s, 2m30s, 1h), for messages that name a flag. */
export function formatDuration(ms: number): string {
  if (ms < 1000 || ms % 1000 !== 0) return `${ms}ms`;
  const parts: string[] = [];
  let seconds = ms / 1000;
  for (const [unit, size] of [["h", 3600], ["m", 60], ["s", 1]] as const) {
    const count = Math.floor(seconds / size);
    if (count > 0) parts.push(`${count}${unit}`);
    seconds -= count * size;
  }
  return parts.join("");
}
