import base64

from opticlink.rtsp.auth import Authenticator, DigestVerifier, best_challenge, parse_challenges

# RFC 7616 section 3.9.1
RFC_CHALLENGE = ('Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
                 'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
                 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def response_of(header: str) -> str:
    return parse_challenges([header])[0].params["response"]


def test_rfc7616_md5_vector():
    challenge = parse_challenges([RFC_CHALLENGE.format(alg="MD5")])[0]
    auth = Authenticator("Mufasa", "Circle of Life", challenge, cnonce=lambda: CNONCE)
    header = auth.authorization("GET", "/dir/index.html")
    assert response_of(header) == "8ca523f5e9506fed4657c9700eebdbec"
    assert "nc=00000001" in header and 'opaque="FQhe' in header


def test_rfc7616_sha256_vector():
    challenge = parse_challenges([RFC_CHALLENGE.format(alg="SHA-256")])[0]
    auth = Authenticator("Mufasa", "Circle of Life", challenge, cnonce=lambda: CNONCE)
    header = auth.authorization("GET", "/dir/index.html")
    assert response_of(header) == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


def test_the_strongest_offered_challenge_is_chosen():
    challenges = parse_challenges(['Basic realm="cam"', 'Digest realm="cam", nonce="n"',
                                   'Digest realm="cam", nonce="n", algorithm=SHA-256'])
    assert best_challenge(challenges).algorithm == "SHA-256"
    assert best_challenge(parse_challenges(['Bearer realm="x"'])) is None


def test_basic_authorization():
    auth = Authenticator("admin", "pa:ss", parse_challenges(['Basic realm="cam"'])[0])
    assert auth.authorization("DESCRIBE", "rtsp://h/") == "Basic " + base64.b64encode(b"admin:pa:ss").decode()


def test_nonce_count_increments_per_request():
    auth = Authenticator("u", "p", parse_challenges(['Digest realm="r", nonce="n", qop="auth"'])[0])
    auth.authorization("OPTIONS", "rtsp://h/")
    assert "nc=00000002" in auth.authorization("DESCRIBE", "rtsp://h/")


def test_verifier_accepts_our_client_for_both_algorithms_and_rejects_a_wrong_password():
    verifier = DigestVerifier("admin", "secret")
    for value in verifier.challenges():
        challenge = parse_challenges([value])[0]
        good = Authenticator("admin", "secret", challenge).authorization("DESCRIBE", "rtsp://h/cam1")
        bad = Authenticator("admin", "wrong", challenge).authorization("DESCRIBE", "rtsp://h/cam1")
        assert verifier.verify("DESCRIBE", good)
        assert not verifier.verify("DESCRIBE", bad)
        assert not verifier.verify("SETUP", good)
