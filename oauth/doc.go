// Package oauth issues and verifies OAuth2 access tokens as JWTs (planned;
// see README's feature table).
package oauth
