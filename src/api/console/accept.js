// stagegate: the invitation acceptance page (GET /v1/invitations/accept). The code rides in
// the URL fragment, never sent to a server; this posts it with the chosen password to
// POST /v1/invitations/accept. Served by the process itself (the page's CSP allows only it).
'use strict';
document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('accept');
  const code = document.getElementById('code');
  const out = document.getElementById('outcome');
  // Also on a fragment change: opening the link in a tab already on this page does not reload it.
  const fromUrl = () => {
    const given = new URLSearchParams(location.hash.slice(1)).get('code');
    if (given) {
      code.value = given;
      document.getElementById('code-field').hidden = true;
    }
  };
  fromUrl();
  window.addEventListener('hashchange', fromUrl);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    out.className = '';
    out.textContent = 'Setting your password…';
    let ok = false;
    let message = 'The server could not be reached; try again.';
    try {
      const r = await fetch('/v1/invitations/accept', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ code: code.value.trim(), password: document.getElementById('password').value }),
      });
      ok = r.ok;
      const body = await r.json().catch(() => ({}));
      message = ok ? 'Your password is set: you can now log in.' : (body.message || ('Refused (' + r.status + ').'));
    } catch (_) { /* message stays */ }
    out.className = ok ? 'notice' : 'error';
    out.textContent = message;
    if (ok) form.hidden = true;
  });
});
