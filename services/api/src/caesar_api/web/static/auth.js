// Sign-in with Keycloak: authorization code flow with PKCE (S256), the realm's public
// browser client. Tokens live in sessionStorage (this tab only, gone when it closes) and
// are refreshed before they expire; the code verifier never leaves the browser.

const TOKENS = "caesar.tokens";
const PENDING = "caesar.pkce";
const REFRESH_MARGIN_S = 30;

function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(nBytes = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(nBytes)));
}

async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** The claims of a JWT (not verified: the api verifies; the page only reads a name and times). */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part + "=".repeat((4 - (part.length % 4)) % 4)), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    return JSON.parse(json);
  } catch {
    return {};
  }
}

export class Auth {
  /** ``config``: the api's ``/web/config.json``. */
  constructor(config) {
    this.enabled = Boolean(config.auth_enabled);
    this.issuer = config.issuer || "";
    this.clientId = config.client_id || "";
    this.tokens = null;
    this.refreshing = null;
    this.timer = null;
    this.onChange = () => {};
  }

  get redirectUri() {
    return `${location.origin}/`;
  }

  endpoint(name) {
    return `${this.issuer}/protocol/openid-connect/${name}`;
  }

  /** Finish a sign-in coming back from Keycloak, or take the tokens this tab already has. */
  async init() {
    if (!this.enabled) return;
    const params = new URLSearchParams(location.search);
    const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
    if (params.has("code") || params.has("error")) {
      sessionStorage.removeItem(PENDING);
      const hash = pending ? pending.hash : "#/";
      history.replaceState(null, "", `/${hash}`);
      if (params.has("error")) throw new Error(`Sign-in failed: ${params.get("error_description") || params.get("error")}`);
      if (!pending || pending.state !== params.get("state")) throw new Error("Sign-in failed: the answer does not match this tab's request; try again.");
      await this.exchange({
        grant_type: "authorization_code",
        code: params.get("code"),
        redirect_uri: this.redirectUri,
        code_verifier: pending.verifier,
      });
      return;
    }
    const stored = JSON.parse(sessionStorage.getItem(TOKENS) || "null");
    if (stored && stored.refresh_expires_at > Date.now() / 1000 + 5) {
      this.store(stored);
      if (stored.expires_at - REFRESH_MARGIN_S < Date.now() / 1000) await this.refresh().catch(() => this.clear());
    }
  }

  get signedIn() {
    return !this.enabled || this.tokens !== null;
  }

  get userName() {
    if (!this.tokens) return "";
    const claims = claimsOf(this.tokens.access_token);
    return claims.preferred_username || claims.email || claims.sub || "";
  }

  /** Go to Keycloak's login page; come back to ``hash``. */
  async login(hash = location.hash || "#/") {
    const verifier = randomString(48);
    const state = randomString(16);
    sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, hash }));
    const query = new URLSearchParams({
      response_type: "code",
      client_id: this.clientId,
      redirect_uri: this.redirectUri,
      scope: "openid",
      state,
      code_challenge: await challengeOf(verifier),
      code_challenge_method: "S256",
    });
    location.assign(`${this.endpoint("auth")}?${query}`);
  }

  /** Forget the tokens and end the Keycloak session. */
  logout() {
    const idToken = this.tokens ? this.tokens.id_token : null;
    this.clear();
    const query = new URLSearchParams({ client_id: this.clientId, post_logout_redirect_uri: this.redirectUri });
    if (idToken) query.set("id_token_hint", idToken);
    location.assign(`${this.endpoint("logout")}?${query}`);
  }

  clear() {
    this.tokens = null;
    sessionStorage.removeItem(TOKENS);
    clearTimeout(this.timer);
    this.onChange();
  }

  store(tokens) {
    this.tokens = tokens;
    sessionStorage.setItem(TOKENS, JSON.stringify(tokens));
    clearTimeout(this.timer);
    const inMs = (tokens.expires_at - REFRESH_MARGIN_S) * 1000 - Date.now();
    this.timer = setTimeout(() => this.refresh().catch(() => this.clear()), Math.max(inMs, 1000));
    this.onChange();
  }

  async exchange(fields) {
    const response = await fetch(this.endpoint("token"), {
      method: "POST",
      body: new URLSearchParams({ client_id: this.clientId, ...fields }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`Sign-in failed: ${body.error_description || body.error || response.status}`);
    const now = Date.now() / 1000;
    this.store({
      access_token: body.access_token,
      refresh_token: body.refresh_token,
      id_token: body.id_token || null,
      expires_at: now + Number(body.expires_in || 60),
      refresh_expires_at: now + Number(body.refresh_expires_in || body.expires_in || 60),
    });
  }

  /** A new access token from the refresh token (one request at a time). */
  refresh() {
    if (!this.tokens) return Promise.reject(new Error("not signed in"));
    if (!this.refreshing) {
      this.refreshing = this.exchange({ grant_type: "refresh_token", refresh_token: this.tokens.refresh_token })
        .finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  /** The ``Authorization`` header value (refreshed first if about to expire), or null. */
  async header() {
    if (!this.enabled || !this.tokens) return null;
    if (this.tokens.expires_at - 5 < Date.now() / 1000) await this.refresh();
    return `Bearer ${this.tokens.access_token}`;
  }
}
