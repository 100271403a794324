"""ConnmonMiddleware: names each request's checkouts, counts them, and
reports a connection a request leaked into a thread."""
from __future__ import annotations

import asyncio

import pytest
from django.test import AsyncClient, Client

import cm_urls
from django_connmon.middleware import ConnmonMiddleware, leak_detected
from django_connmon.pools import registry


@pytest.fixture
def leaks():
    got = []

    def receiver(sender, request, scope, checkouts, **kwargs):
        got.append((scope, checkouts))

    leak_detected.connect(receiver)
    cm_urls.release.clear()
    yield got
    leak_detected.disconnect(receiver)
    cm_urls.release.set()
    for t in cm_urls.started:
        t.join(10)
    cm_urls.started.clear()
    for entry in registry.entries():
        entry.reclaim_dead()


def test_leak_in_a_thread_started_by_the_request_is_reported(alias, leaks, caplog):
    r = Client().get(f"/leak/?using={alias}")
    assert r.status_code == 200
    [(scope, [co])] = leaks
    assert scope.name == "GET /leak/"
    assert co.thread.name == "leaker" and co.entry.alias == alias
    assert co.where and "cm_urls.py" in co.where and "in _session_id" in co.where
    assert any("still checked out" in rec.getMessage() for rec in caplog.records)


def test_thread_using_auto_close_db_is_not_a_leak(alias, leaks):
    r = Client().get(f"/leak/?using={alias}&fixed=1")
    assert r.status_code == 200
    assert leaks == []


def test_request_scope_counts_checkouts_and_names_the_route(alias, leaks):
    r = Client().get(f"/session/?using={alias}")
    scope = r.wsgi_request.connmon
    assert scope.name == "GET /session/"
    assert scope.checkouts == 1 and not scope.active
    assert leaks == []  # the request thread's own connection is Django's to keep


def test_async_mode_reports_the_same_leak(alias, leaks):
    async def go():
        return await AsyncClient().get(f"/leak/?using={alias}")

    r = asyncio.run(go())
    assert r.status_code == 200
    [(scope, [co])] = leaks
    assert scope.name == "GET /leak/" and co.thread.name == "leaker"


def test_mode_is_chosen_once():
    async def aview(request):
        return None

    def view(request):
        return None

    assert ConnmonMiddleware(aview).is_async is True
    assert ConnmonMiddleware(view).is_async is False
    assert asyncio.iscoroutinefunction(ConnmonMiddleware(aview))
