// Suggestions for misspelt names (contract keys, transforms, connector schemes), so an
// error tells people what they probably meant instead of only what is wrong.

/** Levenshtein distance: the fewest single-character edits that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  let previousRow = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previousRow[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min(previousRow[j] + 1, row[j - 1] + 1, substitution));
    }
    previousRow = row;
  }
  return previousRow[b.length];
}

/**
 * The candidate `word` most likely stands for, if any is close enough: a few typos
 * (about one per three letters, ignoring case) or a prefix of at least three letters.
 */
export function closestMatch(word: string, candidates: readonly string[]): string | undefined {
  const needle = word.toLowerCase();
  const maxDistance = Math.max(1, Math.floor(needle.length / 3));
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const lower = candidate.toLowerCase();
    const isPrefix = needle.length >= 3 && lower.startsWith(needle);
    const distance = isPrefix ? 0 : editDistance(needle, lower);
    if (distance <= maxDistance && (best === undefined || distance < best.distance)) {
      best = { candidate, distance };
    }
  }
  return best?.candidate;
}

/** ` (did you mean 'x'?)` to append to an error message, or '' when nothing is close. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const match = closestMatch(word, candidates);
  return match === undefined ? '' : ` (did you mean '${match}'?)`;
}
