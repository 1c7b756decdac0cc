// The cluster credential for admin calls. `npm start` prints the dashboard's address with the
// token in the URL fragment (#token=...), which browsers never send to a server; the page moves
// it to sessionStorage (this tab only, gone when it closes) and takes it out of the address bar.
const key = "quartet-token";

export function adoptTokenFromFragment(): void {
  const params = new URLSearchParams(location.hash.replace(/^#\/?/, ""));
  const token = params.get("token");
  if (!token) return;
  sessionStorage.setItem(key, token);
  history.replaceState(null, "", `${location.pathname}${location.search}#/raft`);
}

export function token(): string | undefined {
  return sessionStorage.getItem(key) ?? undefined;
}
