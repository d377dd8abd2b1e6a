// `${NAME}` in a contract or connection string is read from the environment, so no secret
// has to live in a file or a flow. `$${` writes a literal `${`.

const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export interface Substitution {
  value: string;
  /** Names referenced but not set, in order of appearance. */
  missing: string[];
}

export function substituteEnv(text: string, env: NodeJS.ProcessEnv = process.env): Substitution {
  const missing: string[] = [];
  const value = text.replace(REFERENCE, (match, name: string | undefined) => {
    if (name === undefined) return '${';
    // Only a variable's own text: `${toString}` is a missing variable, not Object's member.
    const found = env[name];
    if (typeof found !== 'string') {
      missing.push(name);
      return match;
    }
    return found;
  });
  return { value, missing };
}
