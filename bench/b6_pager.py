#!/usr/bin/python3
"""B6: the user's alternative to the gateway - a plain sequential pager with urllib.

Pages one kore-sim (or Kore.ai) contact list with skip/limit, one request after the other,
decodes each JSON page and counts the contacts, as a hand-written integration script would.
Standard library only. Prints one line of key=value pairs (the same keys as load_client):
  contacts, messages (pages), wall_s, contacts_per_s, ttfm_ms_median (time to the first page)
Exits 1 when the pager did not read the whole list (count != totalResults, or an id repeated).
--pages N stops after N pages (B3 times the upstream's first page with --pages 1; no check then).

  bench/b6_pager.py --base http://127.0.0.1:PORT --list cl-sim-200000 --page-size 1000 \\
      --client-id cs-bench --secret-file SECRET
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.request


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def jwt(client_id, secret):
    header = b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())
    claims = b64(json.dumps({'sub': 'b6-pager', 'appId': client_id,
                             'iat': int(time.time()), 'exp': int(time.time()) + 3600}).encode())
    signature = hmac.new(secret.encode(), f'{header}.{claims}'.encode(), hashlib.sha256).digest()
    return f'{header}.{claims}.{b64(signature)}'


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--base', required=True)
    p.add_argument('--list', required=True)
    p.add_argument('--stream-id', default='st-bench')
    p.add_argument('--account-id', default='acct-bench')
    p.add_argument('--page-size', type=int, default=1000)
    p.add_argument('--client-id', required=True)
    p.add_argument('--secret-file', required=True)
    p.add_argument('--pages', type=int, default=0, help='stop after this many pages (0: all)')
    a = p.parse_args()
    token = jwt(a.client_id, open(a.secret_file).read().strip())
    headers = {'auth': token, 'iid': a.client_id, 'accountId': a.account_id}
    url = (f'{a.base}/campaign/api/v2/public/{a.stream_id}/campaign/contactList/{a.list}'
           f'/getAllContacts?accountId={a.account_id}&limit={a.page_size}&skip=')

    start = time.monotonic()
    first_page = None
    skip, pages, seen, total = 0, 0, set(), None
    while True:
        with urllib.request.urlopen(urllib.request.Request(url + str(skip), headers=headers)) as r:
            data = json.loads(r.read())['data']
        if first_page is None:
            first_page = time.monotonic()
        pages += 1
        seen.update(c['_id'] for c in data['results'])
        skip += len(data['results'])
        total = int(data['totalResults'])
        if not data['hasMore'] or pages == a.pages:
            break
    wall = time.monotonic() - start
    print(f'contacts={skip} messages={pages} wall_s={wall:.6f} contacts_per_s={int(skip / wall)}'
          f' ttfm_ms_median={(first_page - start) * 1000:.3f}')
    if a.pages == 0 and (skip != total or len(seen) != skip):
        print(f'b6_pager: read {skip} contacts ({len(seen)} distinct) of {total}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
