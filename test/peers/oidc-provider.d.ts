// oidc-provider ships no type declarations; the test peer uses it through its documented JS API.
declare module "oidc-provider";
