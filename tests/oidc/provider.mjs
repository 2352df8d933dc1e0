// A real OpenID provider for the identity tests: oidc-provider (OpenID
// certified) with the authorization-code flow and PKCE, JWT access tokens
// for the Ritma API audience, and the test's accounts with their org roles.
//
// Environment: PORT (0 or unset: a free port the kernel picks at bind, so no
// other process can take it between choice and bind), RITMA_OIDC_ACCOUNTS
// (JSON {id: {email, ritma_roles}}), RITMA_OIDC_AUDIENCE, RITMA_OIDC_REDIRECT_URI, RITMA_OIDC_KID (key id; a new
// id means a new signing key, to test rotation), RITMA_OIDC_ACCESS_TTL
// (seconds, default 600). Prints "READY <issuer>".
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const accounts = JSON.parse(process.env.RITMA_OIDC_ACCOUNTS || '{}');
const audience = process.env.RITMA_OIDC_AUDIENCE;
const redirectUri = process.env.RITMA_OIDC_REDIRECT_URI;
const accessTokenTTL = Number(process.env.RITMA_OIDC_ACCESS_TTL || 600);
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: process.env.RITMA_OIDC_KID || 'k1', use: 'sig', alg: 'RS256' };

// The issuer names the port, so bind first and build the provider after.
const server = createServer();
server.on('clientError', (err, socket) => {
  console.error(`oidc test provider: bad request from client: ${err.code} ${err.message}`);
  socket.destroy();
});
server.on('error', (err) => {
  console.error(`oidc test provider: cannot listen: ${err.code} ${err.message}`);
  process.exit(1);
});
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'ritma-console',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    }],
    jwks: { keys: [jwk] },
    pkce: { required: () => true },
    // As an IdP set up to keep console sessions alive: refresh tokens for the
    // console client without asking for offline_access.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    scopes: ['openid', 'email', 'offline_access'],
    claims: { openid: ['sub'], email: ['email'] },
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'ritma:api',
          audience,
          accessTokenTTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, email: accounts[id]?.email }),
    }),
    extraTokenClaims: async (ctx, token) => {
      const account = accounts[token.accountId];
      return account ? { email: account.email, ritma_roles: account.ritma_roles } : {};
    },
  });
  provider.proxy = false;
  server.on('request', provider.callback());
  console.log(`READY ${issuer}`);
});
