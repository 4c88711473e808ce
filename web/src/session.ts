/** The signed-in person: a bearer token the gateway checks, kept for this tab only. */
export interface Session {
  token: string;
  userId: string;
  username: string;
  picture: string;
  /** Seconds since the epoch; 0 when the token has no `exp`. */
  expiresAt: number;
}

const KEY = "switchboard.token";

/**
 * Takes a token from the address (`#token=...`, the link `devstack up` prints) into
 * `sessionStorage` and removes it from the address bar and the history, so it is not
 * bookmarked, shared or sent in a Referer. Returns the session this tab has, if any.
 */
export function loadSession(location: Location, history: History, storage: Storage): Session | null {
  const fromHash = new URLSearchParams(location.hash.replace(/^#/, "")).get("token");
  if (fromHash) {
    storage.setItem(KEY, fromHash);
    history.replaceState(history.state, "", location.pathname + location.search);
  }
  const token = storage.getItem(KEY);
  return token ? sessionOf(token) : null;
}

/** Keeps a pasted token (the sign-in prompt). Returns null when it is not a JWT. */
export function signIn(storage: Storage, token: string): Session | null {
  const session = sessionOf(token.trim());
  if (session) storage.setItem(KEY, session.token);
  return session;
}

export function signOut(storage: Storage): void {
  storage.removeItem(KEY);
}

/** Reads the claims for display only; the gateway is what verifies the token. */
export function sessionOf(token: string): Session | null {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    const text = (name: string): string => (typeof claims[name] === "string" ? (claims[name] as string) : "");
    const userId = text("sub");
    if (!userId) return null;
    return {
      token,
      userId,
      username: text("preferred_username") || userId,
      picture: text("picture"),
      expiresAt: typeof claims.exp === "number" ? claims.exp : 0,
    };
  } catch {
    return null;
  }
}
