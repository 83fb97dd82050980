#!/usr/bin/env python3
"""Interop with edgewamp's OAuth2 server from Python: Authlib (Debian's
python3-authlib) as the OAuth2 client, PyJWT (python3-jwt) verifying the
access tokens through the JWKS endpoint. Driven by oauth/interop_test.go.

Prints one JSON object a line: {"check": NAME, "ok": BOOL, "detail": TEXT},
then {"done": true, "passed": N, "failed": M}; exits 0 only if all passed.
Never prints a token or a secret.
"""
import argparse
import html
import json
import re
import sys
import time
import traceback

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.common.security import generate_token

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(json.dumps({"check": name, "ok": bool(ok), "detail": str(detail)[-600:]}), flush=True)


def oauth_error(e):
    """The OAuth error code of an Authlib exception, or ''."""
    return getattr(e, "error", "") or ""


def verify_jwt(issuer, token, audience, alg="EdDSA"):
    """Verify an access token with PyJWT through the JWKS (a third-party check)."""
    jwks = jwt.PyJWKClient(issuer + "/.well-known/jwks.json")
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=[alg], audience=audience, issuer=issuer,
                      options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]})


def login_on_page(page_url, username, password, action="approve"):
    """A person on the login/approval page: GET, sign in, POST; returns the
    final response (redirects not followed)."""
    s = requests.Session()
    r = s.get(page_url, allow_redirects=False)
    if r.status_code != 200:
        raise RuntimeError("page %s: HTTP %d" % (page_url.split("?")[0], r.status_code))
    form = {m.group(1): html.unescape(m.group(2))
            for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', r.text)}
    form.update({"username": username, "password": password, "action": action})
    action_url = re.search(r'<form method="post" action="([^"]+)"', r.text).group(1)
    base = page_url.split("/oauth/")[0]
    return s.post(base + action_url, data=form, allow_redirects=False,
                  headers={"Origin": base, "Sec-Fetch-Site": "same-origin"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--creds", required=True, help="JSON: backend_secret, alice_pw, redirect_uri")
    a = ap.parse_args()
    iss = a.issuer
    creds = json.loads(a.creds)
    token_url = iss + "/oauth/token"

    md = requests.get(iss + "/.well-known/oauth-authorization-server").json()
    check("metadata", md["issuer"] == iss and md["token_endpoint"] == token_url
          and "S256" in md["code_challenge_methods_supported"], md.get("issuer"))

    # client_credentials, secret in HTTP Basic.
    cc = OAuth2Session("backend", creds["backend_secret"], token_endpoint_auth_method="client_secret_basic", scope="read")
    tok = cc.fetch_token(token_url, grant_type="client_credentials")
    claims = verify_jwt(iss, tok["access_token"], "realm1")
    check("client_credentials", claims["sub"] == "backend" and claims["scope"] == "read"
          and "refresh_token" not in tok and tok["token_type"] == "Bearer", claims.get("sub"))

    # password, secret in the form; refresh with rotation; reuse detected.
    pw = OAuth2Session("backend", creds["backend_secret"], token_endpoint_auth_method="client_secret_post")
    t1 = pw.fetch_token(token_url, username="alice", password=creds["alice_pw"])
    c1 = verify_jwt(iss, t1["access_token"], "realm1")
    check("password", c1["sub"] == "alice" and c1["roles"] == ["user", "admin"] and "refresh_token" in t1, c1.get("roles"))
    t2 = pw.refresh_token(token_url, refresh_token=t1["refresh_token"])
    c2 = verify_jwt(iss, t2["access_token"], "realm1")
    check("refresh rotates", t2["refresh_token"] != t1["refresh_token"] and c2["sub"] == "alice" and c2["jti"] != c1["jti"])
    try:
        pw.refresh_token(token_url, refresh_token=t1["refresh_token"])
        check("refresh reuse refused", False, "the rotated-out token was accepted")
    except Exception as e:
        check("refresh reuse refused", oauth_error(e) == "invalid_grant", oauth_error(e) or repr(e))
    try:
        pw.refresh_token(token_url, refresh_token=t2["refresh_token"])
        check("family revoked after reuse", False, "the current token still works")
    except Exception as e:
        check("family revoked after reuse", oauth_error(e) == "invalid_grant", oauth_error(e) or repr(e))
    try:
        OAuth2Session("backend", "wrong", token_endpoint_auth_method="client_secret_post").fetch_token(
            token_url, username="alice", password=creds["alice_pw"])
        check("wrong client secret refused", False)
    except Exception as e:
        check("wrong client secret refused", oauth_error(e) == "invalid_client", oauth_error(e) or repr(e))

    # Authorization code with PKCE S256 (public client).
    ru = creds["redirect_uri"]
    web = OAuth2Session("dashboard", redirect_uri=ru, scope="read", code_challenge_method="S256",
                        token_endpoint_auth_method="none")
    verifier = generate_token(64)
    url, state = web.create_authorization_url(iss + "/oauth/authorize", code_verifier=verifier)
    r = login_on_page(url, "bob", creds["bob_pw"])
    loc = r.headers.get("Location", "")
    check("authorization page redirects", r.status_code == 303 and loc.startswith(ru + "?"), r.status_code)
    t3 = web.fetch_token(token_url, authorization_response=loc, code_verifier=verifier)
    c3 = verify_jwt(iss, t3["access_token"], "realm1")
    check("authorization code + PKCE", c3["sub"] == "bob" and c3["client_id"] == "dashboard", c3.get("sub"))
    # A second redemption of the same code is refused.
    try:
        web.fetch_token(token_url, authorization_response=loc, code_verifier=verifier)
        check("code replay refused", False)
    except Exception as e:
        check("code replay refused", oauth_error(e) == "invalid_grant", oauth_error(e) or repr(e))
    # Wrong verifier.
    url, state = web.create_authorization_url(iss + "/oauth/authorize", code_verifier=verifier)
    loc = login_on_page(url, "bob", creds["bob_pw"]).headers.get("Location", "")
    try:
        web.fetch_token(token_url, authorization_response=loc, code_verifier=generate_token(64))
        check("PKCE mismatch refused", False)
    except Exception as e:
        check("PKCE mismatch refused", oauth_error(e) == "invalid_grant", oauth_error(e) or repr(e))

    # Device flow: Authlib has no device client; the token request is its fetch_token.
    dev = OAuth2Session("device", token_endpoint_auth_method="none")
    da = requests.post(iss + "/oauth/device_authorization", data={"client_id": "device"}).json()
    try:
        dev.fetch_token(token_url, grant_type="urn:ietf:params:oauth:grant-type:device_code", device_code=da["device_code"])
        check("device pending", False)
    except Exception as e:
        check("device pending", oauth_error(e) == "authorization_pending", oauth_error(e) or repr(e))
    r = login_on_page(da["verification_uri_complete"], "alice", creds["alice_pw"])
    check("device approved on the page", r.status_code == 200 and "signed in as alice" in r.text, r.status_code)
    time.sleep(da["interval"])
    t4 = dev.fetch_token(token_url, grant_type="urn:ietf:params:oauth:grant-type:device_code", device_code=da["device_code"])
    c4 = verify_jwt(iss, t4["access_token"], "realm1")
    check("device token", c4["sub"] == "alice" and c4["client_id"] == "device" and "refresh_token" in t4)

    # Introspection and revocation (RFC 7662, RFC 7009).
    rs = OAuth2Session("backend", creds["backend_secret"], token_endpoint_auth_method="client_secret_basic",
                       revocation_endpoint_auth_method="client_secret_basic")
    t5 = rs.fetch_token(token_url, grant_type="client_credentials")
    info = rs.introspect_token(iss + "/oauth/introspect", token=t5["access_token"]).json()
    check("introspect active", info.get("active") is True and info.get("sub") == "backend", info.get("active"))
    rv = rs.revoke_token(iss + "/oauth/revoke", token=t5["access_token"], token_type_hint="access_token")
    check("revoke", rv.status_code == 200, rv.status_code)
    info = rs.introspect_token(iss + "/oauth/introspect", token=t5["access_token"]).json()
    check("introspect after revoke", info == {"active": False}, info)

    # PyJWT refuses a tampered token and a wrong audience.
    h, p, s = t5["access_token"].split(".")
    bad = h + "." + p + "." + ("A" if s[0] != "A" else "B") + s[1:]
    try:
        verify_jwt(iss, bad, "realm1")
        check("PyJWT refuses a tampered token", False)
    except jwt.InvalidSignatureError:
        check("PyJWT refuses a tampered token", True)
    try:
        verify_jwt(iss, t4["access_token"], "realm2")
        check("PyJWT refuses a wrong audience", False)
    except jwt.InvalidAudienceError:
        check("PyJWT refuses a wrong audience", True)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        check("no exception", False, traceback.format_exc().replace("\n", " | "))
    print(json.dumps({"done": True, "passed": passed, "failed": failed}), flush=True)
    sys.exit(0 if failed == 0 else 1)
