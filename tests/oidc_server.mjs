// A real oidc-provider authorization server for the respond tests (started by tests/authservers.py).
//
//   node tests/oidc_server.mjs   with  SG_OIDC_MODULES=<dir holding node_modules/oidc-provider>
//                                      SG_OIDC_PORT, SG_OIDC_CLIENTS (JSON list of {client_id, client_secret})
//
// Revocation (RFC 7009), introspection (RFC 7662) and client_credentials are enabled; they are off by
// default. So that tests can get a user's access + refresh token pair without a browser, one extension
// grant issues them for a given account id, the way a password grant would (oidc-provider has none).
// Storage is oidc-provider's own in-memory adapter: revocation really destroys the stored token.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.SG_OIDC_MODULES;
const port = Number(process.env.SG_OIDC_PORT);
const clients = JSON.parse(process.env.SG_OIDC_CLIENTS);
const USER_GRANT = 'urn:spillguard:params:oauth:grant-type:test-user';

const entry = path.join(modules, 'node_modules', 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials', 'refresh_token', USER_GRANT],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  ttl: { AccessToken: 3600, ClientCredentials: 3600, RefreshToken: 86400, Grant: 86400 },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
});
provider.proxy = false;

provider.registerGrantType(USER_GRANT, async (ctx, next) => {
  const { client, params } = ctx.oidc;
  const accountId = params.username;
  if (!accountId) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_request', error_description: 'username is required' };
    return;
  }
  const scope = 'openid offline_access api:read';
  const grant = new provider.Grant({ accountId, clientId: client.clientId });
  grant.addOIDCScope(scope);
  const grantId = await grant.save();
  const at = new provider.AccessToken({ accountId, client, grantId, scope, gty: 'test_user' });
  const rt = new provider.RefreshToken({ accountId, client, grantId, scope, gty: 'test_user' });
  ctx.body = {
    access_token: await at.save(),
    refresh_token: await rt.save(),
    token_type: 'Bearer',
    expires_in: at.expiration,
    scope,
  };
  await next();
}, ['username', 'scope']);

provider.listen(port, '127.0.0.1');
process.stdout.write(`oidc-provider listening on 127.0.0.1:${port}\n`);
