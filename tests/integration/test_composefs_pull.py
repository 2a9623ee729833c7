"""composefs_pull run through ``ansible`` / ``ansible-playbook`` against a real local registry, skopeo and podman.

The registry is Debian's docker-registry (the session ``registry`` fixture of tests/conftest.py) on
127.0.0.1; the images are built here with tests/tools/ocigen.py and pushed with ``skopeo copy``.
Hosts are simulated bootc hosts (tests/tools/simhost, preset ``demo``) built per test module.

Expected values come from oracles only: ocigen's digests (hashlib over the blobs it writes),
``skopeo inspect`` (digests, ``--config`` diff_ids), ``podman images --digests``, tag link texts as
composefs-repo.md section 10.4 writes them, and the independent splitstream reader of
tests/harness/oracle.py (written from section 8, with the ``zstd`` tool) for what a tag keeps and
for layer streams reassembled.
"""

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import http.server

import pytest

from ansible_collections.bootc.composefs.tests.tools import ocigen
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder

MODULE = "bootc.composefs.composefs_pull"
HARNESS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "harness")
PODMAN_ENV = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup", "podman-env.sh")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _oracle():
    if HARNESS not in sys.path:
        sys.path.insert(0, HARNESS)
    import oracle  # pylint: disable=import-outside-toplevel,import-error

    return oracle


def _run(argv, env=None):
    proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env or dict(os.environ, LC_ALL="C"), check=False)
    assert proc.returncode == 0, "%s: %s" % (argv, proc.stderr.decode("utf-8", "replace")[-2000:])
    return proc.stdout.decode()


def _push(layout_dir, ref_name, destination, all_images=False):
    flags = ["--all"] if all_images else []
    _run(["skopeo", "copy", "-q"] + flags + ["--dest-tls-verify=false", "oci:%s:%s" % (layout_dir, ref_name), destination])


def _inspect(name, *extra):
    return json.loads(_run(["skopeo", "inspect", "--tls-verify=false"] + list(extra) + [name]))


def _tag_link(repo, tag):
    path = os.path.join(repo, "streams", "refs", "oci", tag.replace("%", "%25").replace("/", "%2F"))
    return os.readlink(path) if os.path.islink(path) else None


def _tags(repo):
    folder = os.path.join(repo, "streams", "refs", "oci")
    return {name: os.readlink(os.path.join(folder, name)) for name in os.listdir(folder)} if os.path.isdir(folder) else {}


def _snapshot(repo):
    """Every name below objects/, images/, streams/ with its link text (the repository's content)."""
    found = {}
    for top in ("objects", "images", "streams"):
        for dirpath, _dirs, files in os.walk(os.path.join(repo, top)):
            for name in files + [d for d in _dirs if os.path.islink(os.path.join(dirpath, d))]:
                path = os.path.join(dirpath, name)
                found[os.path.relpath(path, repo)] = os.readlink(path) if os.path.islink(path) else None
    return found


def _layer_entry(repo, diff_id):
    text = os.readlink(os.path.join(repo, "streams", "oci-layer-" + diff_id))
    return text[len("../objects/"):].replace("/", "")


class Relay:
    """A TCP relay 127.0.0.1:<port> -> 127.0.0.1:<target>: throttles, or cuts after some bytes from the server."""

    def __init__(self, target_port, rate=None, cut_after=None, on_cut=None):
        self.target_port = target_port
        self.rate = rate
        self.cut_after = cut_after
        self.on_cut = on_cut
        self.sent = 0
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._sockets = []
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.address = "127.0.0.1:%d" % self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _addr = self._server.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source, sink, from_server):
        try:
            while True:
                data = source.recv(16384)
                if not data:
                    break
                if from_server:
                    with self._lock:
                        self.sent += len(data)
                        cut_now = self.cut_after is not None and self.sent >= self.cut_after and not self.cut.is_set()
                        if cut_now:
                            self.cut.set()
                    if cut_now:
                        if self.on_cut is not None:
                            self.on_cut()
                        self.close_connections()
                        return
                    if self.rate:
                        time.sleep(len(data) / float(self.rate))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close_connections(self):
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def close(self):
        self._server.close()
        self.close_connections()


class _Refuse(http.server.BaseHTTPRequestHandler):
    """A registry asking for credentials it never accepts."""

    def do_GET(self):  # pylint: disable=invalid-name
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


@pytest.fixture(scope="module")
def images(registry, tmp_path_factory):
    """Images built and pushed once: OS v1/v2 under one moving tag, an app image, an index, a big image."""
    base = tmp_path_factory.mktemp("pull-images")
    os_dir = str(base / "os")
    v1 = ocigen.write_bootc_image(os_dir, version="1", tag="1")
    v2 = ocigen.write_bootc_image(os_dir, version="2", tag="2")
    app_dir = str(base / "app")
    app_layers = [[("dir", "usr"), ("dir", "srv"), ("file", "srv/app.bin", b"app" * 20000), ("file", "srv/app.conf", b"k=v\n")]]
    app = ocigen.write_image(app_dir, app_layers, tag="1", labels={"org.example.app": "web"})
    idx_dir = str(base / "idx")
    amd = ocigen.write_image(idx_dir, app_layers + [[("file", "srv/arch", b"amd64")]], architecture="amd64", add_ref=False)
    arm = ocigen.write_image(idx_dir, app_layers + [[("file", "srv/arch", b"arm64")]], architecture="arm64", add_ref=False)
    index = ocigen.write_index(idx_dir, [amd, arm], tag="multi")
    rng = random.Random(7)
    big_dir = str(base / "big")
    many = [("dir", "usr"), ("dir", "usr/a")] + [("file", "usr/a/f%05d" % i, rng.randbytes(1500)) for i in range(2500)]
    many_b = [("dir", "usr/b")] + [("file", "usr/b/f%05d" % i, rng.randbytes(1500)) for i in range(2500)]
    big = ocigen.write_image(big_dir, [many, many_b, [("file", "usr/blob", rng.randbytes(6 << 20))]], tag="1")
    pushed = {"registry": registry.address}
    _push(os_dir, "1", "docker://%s/sim/os:stable" % registry.address)
    _push(os_dir, "1", "docker://%s/sim/os:1" % registry.address)
    _push(os_dir, "2", "docker://%s/sim/os:2" % registry.address)
    _push(app_dir, "1", "docker://%s/sim/app:1" % registry.address)
    _push(idx_dir, "multi", "docker://%s/sim/multi:1" % registry.address, all_images=True)
    _push(big_dir, "1", "docker://%s/sim/big:1" % registry.address)
    pushed.update(base=base, os_dir=os_dir, v1=v1, v2=v2, app_dir=app_dir, app=app, idx_dir=idx_dir, amd=amd, arm=arm,
                  index=index, big_dir=big_dir, big=big,
                  tars={"v1": [ocigen.build_layer_tar(e) for e in ocigen.bootc_rootfs_layers(version="1")]})
    return pushed


def _build_host(simhost, path):
    root = str(path / "root")
    simhost.build_host(root, simhost.preset_spec("demo"))
    return {"root": root, "repo": os.path.join(root, "sysroot", "composefs")}


@pytest.fixture(scope="module")
def host(simhost, tmp_path_factory):
    return _build_host(simhost, tmp_path_factory.mktemp("pull-host"))


class PrivatePodman:
    """A podman store of the test's own: graph root, run root and libpod tmp dir all private.

    ``CONTAINERS_CONF`` (tests/setup/podman-env.sh's settings plus ``tmp_dir``) is given to every
    podman the test runs, the module's included, so nothing touches the machine's shared
    ``/run/libpod``. It is emptied with ``rmi --all`` (never ``podman system reset``, which resets
    state other stores share) and removed with whatever is still mounted below it.
    """

    def __init__(self, base, root, runroot):
        self.base = base
        self.root = str(root)
        self.runroot = str(runroot)
        self.tmpdir = tempfile.mkdtemp(prefix="libpod", dir="/tmp")
        settings = _run(["bash", "-c", ". %s && cat \"$CONTAINERS_CONF\"" % PODMAN_ENV])
        assert "[engine]\n" in settings, settings
        self.conf = os.path.join(str(base), "containers.conf")
        with open(self.conf, "w") as handle:
            handle.write(settings.replace("[engine]\n", "[engine]\ntmp_dir = \"%s\"\n" % self.tmpdir, 1))
        self.env = dict(os.environ, LC_ALL="C", CONTAINERS_CONF=self.conf)
        self.argv = ["podman", "--root", self.root, "--runroot", self.runroot, "--tmpdir", self.tmpdir]

    def run(self, *args):
        return _run(self.argv + list(args), env=self.env)

    def remove(self):
        subprocess.run(self.argv + ["rmi", "--all", "--force"], env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        with open("/proc/self/mountinfo") as handle:
            mounts = [line.split()[4] for line in handle]
        for point in sorted(mounts, reverse=True):
            if any(point == p or point.startswith(p + "/") for p in (self.root, self.runroot, self.tmpdir)):
                subprocess.run(["umount", "-l", point], check=False)
        for path in (self.root, self.runroot, self.tmpdir):
            shutil.rmtree(path, ignore_errors=True)


def _pull(ansible_adhoc, where, check=False, **args):
    outcome = ansible_adhoc(MODULE, dict(args, root=where["root"]), check=check)
    return outcome


LOOP_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Pull each case
      bootc.composefs.composefs_pull:
        root: "{{ item.root }}"
        image: "{{ item.image }}"
        transport: "{{ item.transport | default(omit) }}"
        tag: "{{ item.tag | default(omit) }}"
        tls_verify: "{{ item.tls_verify | default(omit) }}"
        creds: "{{ item.creds | default(omit) }}"
        platform: "{{ item.platform | default(omit) }}"
      loop: "{{ cases }}"
      register: pulled
      ignore_errors: true
    - name: Keep the results
      ansible.builtin.copy:
        content: "{{ pulled.results | to_json }}"
        dest: "{{ report }}"
        mode: "0644"
"""


def _pull_each(ansible_playbook, tmp_path, cases):
    """One ansible-playbook run pulling every case (dicts of module options); returns the registered results."""
    (tmp_path / "loop.yml").write_text(LOOP_PLAYBOOK)
    proc = ansible_playbook(tmp_path / "loop.yml", {"cases": cases, "report": str(tmp_path / "loop.json")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "loop.json").read_text())
    assert len(results) == len(cases)
    return results


def _ok(outcome, changed):
    assert outcome.rc == 0 and outcome.status == ("CHANGED" if changed else "SUCCESS"), outcome
    assert outcome.result["changed"] is changed
    return outcome.result


def test_registry_pull_idempotence_moved_tag_and_check_mode(ansible_adhoc, host, images):
    name = "%s/sim/os:stable" % images["registry"]
    v1, v2 = images["v1"], images["v2"]
    assert _inspect("docker://" + name)["Digest"] == v1["manifest_digest"]
    first = _ok(_pull(ansible_adhoc, host, image=name, tls_verify=False), True)
    assert first["manifest_digest"] == first["source_digest"] == v1["manifest_digest"] and first["form"] == "exact"
    assert first["tag"] == "localhost/bootc-" + v1["manifest_digest"]
    assert _tag_link(host["repo"], first["tag"]) == "../../oci-manifest-" + v1["manifest_digest"]
    assert first["commands"] == [["skopeo", "experimental-image-proxy", "--tls-verify=false"]]
    assert first["bootable"] is True and first["boot_verity"]
    assert os.readlink(os.path.join(host["repo"], "images", first["boot_verity"])).replace("/", "").endswith(
        first["boot_verity"])
    second = _ok(_pull(ansible_adhoc, host, image=name, tls_verify=False), False)
    assert second["layers_fetched"] == [] and second["manifest_digest"] == v1["manifest_digest"]

    _push(images["os_dir"], "2", "docker://" + name)
    assert _inspect("docker://" + name)["Digest"] == v2["manifest_digest"]
    predicted = _ok(_pull(ansible_adhoc, host, check=True, image=name, tls_verify=False), True)
    moved = _ok(_pull(ansible_adhoc, host, image=name, tls_verify=False), True)
    assert moved["manifest_digest"] == predicted["manifest_digest"] == v2["manifest_digest"]
    assert moved["layers_fetched"] == predicted["layers_fetched"] == [d for d in v2["diff_ids"] if d not in v1["diff_ids"]]
    assert moved["layers_reused"] == [d for d in v2["diff_ids"] if d in v1["diff_ids"]]
    after = _ok(_pull(ansible_adhoc, host, check=True, image=name, tls_verify=False), False)
    assert after["manifest_digest"] == v2["manifest_digest"]
    _push(images["os_dir"], "1", "docker://" + name)


def test_imported_layers_reexport_byte_identically(ansible_adhoc, host, images):
    name = "%s/sim/os:1" % images["registry"]
    assert _pull(ansible_adhoc, host, image=name, tls_verify=False).rc == 0
    diff_ids = _inspect("docker://" + name, "--config")["rootfs"]["diff_ids"]
    assert diff_ids == images["v1"]["diff_ids"]
    for diff_id, tar_bytes in zip(diff_ids, images["tars"]["v1"]):
        exported = _oracle().reassemble(host["repo"], _layer_entry(host["repo"], diff_id))
        assert "sha256:" + hashlib.sha256(exported).hexdigest() == diff_id
        assert exported == tar_bytes


def test_pinned_digest(ansible_adhoc, host, images):
    pinned = "%s/sim/os@%s" % (images["registry"], images["v1"]["manifest_digest"])
    assert _pull(ansible_adhoc, host, image=pinned, tls_verify=False).rc == 0
    quiet = _ok(_pull(ansible_adhoc, host, image=pinned, tls_verify=False), False)
    assert quiet["contacted_source"] is False and quiet["commands"] == []
    pinned2 = "%s/sim/os@%s" % (images["registry"], images["v2"]["manifest_digest"])
    fetched = _ok(_pull(ansible_adhoc, host, image=pinned2, tls_verify=False, tag="pinned/os:2"), True)
    assert fetched["manifest_digest"] == images["v2"]["manifest_digest"]
    assert _tag_link(host["repo"], "pinned/os:2") == "../../oci-manifest-" + images["v2"]["manifest_digest"]


def test_image_index(ansible_adhoc, host, images):
    name = "%s/sim/multi:1" % images["registry"]
    assert _inspect("docker://" + name, "--raw")["manifests"][1]["digest"] == images["arm"]["manifest_digest"]
    arm = _ok(_pull(ansible_adhoc, host, image=name, tls_verify=False, platform="linux/arm64", tag="apps/multi:arm"), True)
    assert arm["manifest_digest"] == images["arm"]["manifest_digest"] and arm["platform"] == "linux/arm64"
    amd = _ok(_pull(ansible_adhoc, host, image=name, tls_verify=False, platform="linux/amd64", tag="apps/multi:amd"), True)
    assert amd["manifest_digest"] == images["amd"]["manifest_digest"]
    assert amd["layers_reused"] == images["amd"]["diff_ids"][:1] and not amd["bootable"]


def test_every_transport(ansible_playbook, simhost, images, tmp_path):
    where = _build_host(simhost, tmp_path)
    registry = images["registry"]
    archive_oci, archive_docker = str(tmp_path / "app-oci.tar"), str(tmp_path / "app-docker.tar")
    _run(["skopeo", "copy", "-q", "oci:%s:1" % images["app_dir"], "oci-archive:%s:1" % archive_oci])
    _run(["skopeo", "copy", "-q", "oci:%s:1" % images["app_dir"], "docker-archive:%s:app:1" % archive_docker])
    short = tempfile.mkdtemp(prefix="cs", dir="/tmp")
    podman = PrivatePodman(tmp_path, tmp_path / "store", os.path.join(short, "run"))
    store = "[overlay@%s+%s]" % (podman.root, podman.runroot)
    try:
        podman.run("pull", "-q", "--tls-verify=false", "docker://%s/sim/app:1" % registry)
        podman_digest = podman.run("image", "inspect", "--format", "{{.Digest}}", "%s/sim/app:1" % registry).strip()
        assert podman_digest == images["app"]["manifest_digest"]  # podman keeps the registry's manifest
        storage_name = "containers-storage:%s%s/sim/app:1" % (store, registry)
        cases = [
            ({"image": "docker://%s/sim/app:1" % registry, "tls_verify": False}, "docker://%s/sim/app:1" % registry, "exact"),
            ({"image": "%s:1" % images["app_dir"], "transport": "oci"}, "oci:%s:1" % images["app_dir"], "exact"),
            ({"image": "oci-archive:" + archive_oci}, "oci-archive:" + archive_oci, "exact"),
            ({"image": archive_docker, "transport": "docker-archive"}, "docker-archive:" + archive_docker, "converted"),
            ({"image": storage_name}, None, "exact"),
            ({"image": storage_name}, None, "exact"),
        ]
        results = _pull_each(ansible_playbook, tmp_path, [dict(args, root=where["root"], tag="apps/%d" % min(i, 4))
                                                          for i, (args, _n, _f) in enumerate(cases)])
        for number, ((args, inspect_name, form), result) in enumerate(zip(cases, results)):
            assert not result.get("failed") and result["changed"] is (number < 5), (args, result)
            if number == 5:  # the same tag again (pull_policy missing): the source is not even asked
                assert result["contacted_source"] is False and result["manifest_digest"] == results[4]["manifest_digest"]
                continue
            expected = _inspect(inspect_name)["Digest"] if inspect_name else podman_digest
            assert result["source_digest"] == expected and result["form"] == form, args
            assert _tag_link(where["repo"], result["tag"]) == "../../oci-manifest-" + result["manifest_digest"]
            if form == "exact":
                assert result["manifest_digest"] == images["app"]["manifest_digest"] == result["source_digest"], args
                assert result["config_digest"] == images["app"]["config_digest"], args
            else:  # skopeo's OCI conversion of docker-archive's Docker schema 2 manifest, under its own digest
                assert result["manifest_digest"] != result["source_digest"], args
                assert result["layers_reused"] == images["app"]["diff_ids"], args
        layer = _oracle().reassemble(where["repo"], _layer_entry(where["repo"], images["app"]["diff_ids"][0]))
        assert "sha256:" + hashlib.sha256(layer).hexdigest() == images["app"]["diff_ids"][0]
    finally:
        podman.remove()
        shutil.rmtree(short, ignore_errors=True)


def test_via_containers_storage(ansible_adhoc, simhost, images, tmp_path):
    where = _build_host(simhost, tmp_path)
    run_dir = tempfile.mkdtemp(prefix="run", dir="/tmp")
    name = "%s/sim/os:2" % images["registry"]
    storage = os.path.join(where["root"], "sysroot", "ostree", "bootc", "storage")
    podman = PrivatePodman(tmp_path, storage, os.path.join(run_dir, "bootc", "storage"))
    args = {"image": name, "tls_verify": False, "via_containers_storage": True, "run_dir": run_dir}
    try:
        os.environ["CONTAINERS_CONF"] = podman.conf  # the module's podman uses the private libpod tmp dir too
        first = _ok(_pull(ansible_adhoc, where, **args), True)
        assert first["form"] == "exact"
        assert first["manifest_digest"] == first["source_digest"] == images["v2"]["manifest_digest"]
        assert podman.run("images", "--digests", "--format", "{{.Digest}}").split() == [images["v2"]["manifest_digest"]]
        assert first["commands"][0][:6] == podman.argv[:5] + ["pull"]
        assert sorted(first["layers_fetched"] + first["layers_reused"]) == sorted(images["v2"]["diff_ids"])
        predicted = _ok(_pull(ansible_adhoc, where, check=True, **args), False)
        assert predicted["manifest_digest"] == first["manifest_digest"]
        again = _ok(_pull(ansible_adhoc, where, **args), False)
        assert again["layers_fetched"] == [] and again["manifest_digest"] == first["manifest_digest"]
        # the same manifest read directly: the same image, nothing to do
        direct = _ok(_pull(ansible_adhoc, where, image=name, tls_verify=False, run_dir=run_dir), False)
        assert direct["layers_fetched"] == [] and direct["manifest_digest"] == images["v2"]["manifest_digest"]
        assert direct["tag"] == first["tag"]
    finally:
        os.environ.pop("CONTAINERS_CONF", None)
        podman.remove()
        shutil.rmtree(run_dir, ignore_errors=True)


def _gc(ansible_adhoc, where):
    outcome = ansible_adhoc("bootc.composefs.composefs_gc", {"root": where["root"]})
    assert outcome.rc == 0, outcome
    return outcome.result


def test_app_image_survives_gc(ansible_adhoc, simhost, images, tmp_path):
    where = _build_host(simhost, tmp_path)
    oracle = _oracle()
    app = _ok(_pull(ansible_adhoc, where, image="%s/sim/app:1" % images["registry"], tls_verify=False,
                    tag="quay.io/example/web:1"), True)
    os_image = _ok(_pull(ansible_adhoc, where, image="%s/sim/os:2" % images["registry"], tls_verify=False), True)
    app_closure = oracle.RepoOracle(where["repo"]).tag_closure(app["manifest_digest"])
    _gc(ansible_adhoc, where)
    assert _tag_link(where["repo"], "quay.io/example/web:1") == "../../oci-manifest-" + app["manifest_digest"]
    assert oracle.missing_from(where["repo"], app_closure) == []
    # bootc's rule: a localhost/bootc-* tag that no deployment uses goes; the pre-fetch comes back without the network
    assert _tag_link(where["repo"], os_image["tag"]) is None
    again = _ok(_pull(ansible_adhoc, where, image="%s/sim/os@%s" % (images["registry"], images["v2"]["manifest_digest"]),
                      tls_verify=False), True)
    assert again["manifest_digest"] == images["v2"]["manifest_digest"]


def test_registry_stops_mid_pull(ansible_adhoc, simhost, images, registry, tmp_path):
    where = _build_host(simhost, tmp_path)
    _gc(ansible_adhoc, where)
    before_tags, before = _tags(where["repo"]), _snapshot(where["repo"])
    relay = Relay(registry.port, cut_after=1 << 20, on_cut=registry.stop)
    try:
        outcome = _pull(ansible_adhoc, where, image="%s/sim/big:1" % relay.address, tls_verify=False)
    finally:
        relay.close()
        registry.start()
    assert relay.cut.is_set()
    assert outcome.rc != 0 and outcome.result["failure"] == "unreachable", outcome
    assert "big" in outcome.result["msg"] and outcome.result["commands"]
    assert _tags(where["repo"]) == before_tags
    assert not [n for n in os.listdir(where["repo"]) if n.startswith(".pull")]
    _gc(ansible_adhoc, where)
    assert _snapshot(where["repo"]) == before


def test_killed_import_leaves_debris_the_gc_collects(ansible_adhoc, simhost, images, tmp_path):
    where = _build_host(simhost, tmp_path)
    _gc(ansible_adhoc, where)
    baseline_tags, baseline = _tags(where["repo"]), _snapshot(where["repo"])
    progress = os.path.join(where["root"], "run", "bootc-composefs", "pull-progress.json")
    argv = [os.path.join(REPO_ROOT, ".venv", "bin", "ansible"), "localhost", "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=" + sys.executable, "-m", MODULE, "-a",
            json.dumps({"root": where["root"], "image": "%s/sim/big:1" % images["registry"], "tls_verify": False})]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, ".ci", "tmp", "collections"), LC_ALL="C.UTF-8",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,  # pylint: disable=consider-using-with
                            start_new_session=True)
    state = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(progress) as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            state = None
        if state and state["phase"] == "fetching" and state["layers_done"] >= 1:
            os.kill(state["pid"], signal.SIGKILL)  # the module process (ansible runs it in a session of its own)
            break
        time.sleep(0.01)
    proc.wait()
    if state and proc.returncode == 0:
        pytest.fail("the module was not killed: %s" % state)
    assert state and state["phase"] == "fetching", "the pull ended before it could be killed mid-import: %s" % state
    assert _tags(where["repo"]) == baseline_tags
    debris = set(_snapshot(where["repo"])) - set(baseline)
    assert "streams/oci-layer-" + images["big"]["diff_ids"][0] in debris
    assert not [n for n in os.listdir(where["repo"]) if n.startswith(".pull")]  # nothing staged beside the repository
    _gc(ansible_adhoc, where)
    assert _snapshot(where["repo"]) == baseline and _tags(where["repo"]) == baseline_tags
    done = _ok(_pull(ansible_adhoc, where, image="%s/sim/big:1" % images["registry"], tls_verify=False), True)
    assert done["manifest_digest"] == images["big"]["manifest_digest"]
    assert not [n for n in os.listdir(where["repo"]) if n.startswith(".pull")]


def test_failures_say_what_failed(ansible_playbook, host, images, registry, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    layout = str(tmp_path / "bad")
    bad = ocigen.write_image(layout, [[("dir", "usr"), ("file", "usr/x", b"x" * 5000)]], tag="1")
    _push(layout, "1", "docker://%s/sim/bad:1" % registry.address)
    blob = json.loads(bad["manifest"])["layers"][0]["digest"].split(":")[1]
    stored = os.path.join(registry.workdir, "data", "docker", "registry", "v2", "blobs", "sha256", blob[:2], blob, "data")
    with open(stored, "r+b") as handle:
        handle.seek(20)
        byte = handle.read(1)
        handle.seek(20)
        handle.write(bytes([byte[0] ^ 0xFF]))
    cases = [
        ({"image": "127.0.0.1:%d/sim/os:1" % closed, "tls_verify": False}, "unreachable", "connection refused"),
        ({"image": "127.0.0.1:%d/sim/os:1" % server.server_address[1], "tls_verify": False, "creds": "me:wrong-pw"},
         "auth-refused", "unauthorized"),
        ({"image": "%s/sim/os:1" % registry.address}, "tls", "HTTPS"),
        ({"image": "%s/sim/nosuch:1" % registry.address, "tls_verify": False}, "not-found", "manifest unknown"),
        ({"image": "ftp://%s/sim/os:1" % registry.address}, "unknown-transport", "unknown transport"),
        ({"image": "%s/sim/bad:1" % registry.address, "tls_verify": False}, "digest-mismatch", blob),
        ({"image": "oci:%s:1@sha256:%s" % (images["os_dir"], "0" * 64)}, "digest-mismatch", "pinned"),
    ]
    try:
        results = _pull_each(ansible_playbook, tmp_path, [dict(args, root=host["root"]) for args, _f, _t in cases])
    finally:
        server.shutdown()
        server.server_close()
    for (args, failure, text), result in zip(cases, results):
        assert result["failed"] and result["failure"] == failure, (args, result)
        assert text in result["msg"] and "Traceback" not in result["msg"], result["msg"]
        assert "wrong-pw" not in json.dumps({k: v for k, v in result.items() if k != "item"})


def test_no_space(ansible_adhoc, images, registry, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here: %s" % proc.stderr.decode().strip())
    try:
        root = mount / "root"
        repo_builder.RepoBuilder(root / "sysroot" / "composefs")
        layout = str(tmp_path / "zeros")
        ocigen.write_image(layout, [[("dir", "usr"), ("file", "usr/zeros", bytes(16 << 20))]], tag="1")
        _push(layout, "1", "docker://%s/sim/zeros:1" % registry.address)
        outcome = _pull(ansible_adhoc, {"root": str(root)}, image="%s/sim/zeros:1" % registry.address, tls_verify=False)
        assert outcome.rc != 0 and outcome.result["failure"] == "no-space", outcome
        assert "No space left on device" in outcome.result["msg"] or "free space" in outcome.result["msg"]
        assert not _tags(str(root / "sysroot" / "composefs"))
        assert not [n for n in os.listdir(root / "sysroot" / "composefs") if n.startswith(".pull")]
    finally:
        subprocess.run(["umount", str(mount)], check=False)


ASYNC_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Start the pull in the background
      bootc.composefs.composefs_pull:
        root: "{{ host_root }}"
        image: "{{ image }}"
        tls_verify: false
        tag: apps/big:1
      async: 300
      poll: 0
      register: job
    - name: Wait for it
      ansible.builtin.async_status:
        jid: "{{ job.ansible_job_id }}"
      register: outcome
      until: outcome.finished
      retries: 120
      delay: 1
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ outcome | to_json }}"
        dest: "{{ report }}"
        mode: "0644"
"""


def test_async_pull_keeps_a_progress_file(ansible_playbook, simhost, images, registry, tmp_path):
    where = _build_host(simhost, tmp_path)
    relay = Relay(registry.port, rate=4 << 20)
    progress = os.path.join(where["root"], "run", "bootc-composefs", "pull-progress.json")
    (tmp_path / "async.yml").write_text(ASYNC_PLAYBOOK)
    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            try:
                with open(progress) as handle:
                    samples.append(json.load(handle))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        proc = ansible_playbook(tmp_path / "async.yml", {"host_root": where["root"], "image": "%s/sim/big:1" % relay.address,
                                                         "report": str(tmp_path / "report.json")})
    finally:
        done.set()
        sampler.join()
        relay.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "report.json").read_text())
    assert result["finished"] and result["changed"] and result["manifest_digest"] == images["big"]["manifest_digest"]
    fetching = [s for s in samples if s["phase"] == "fetching"]
    assert fetching and max(s["bytes_done"] for s in fetching) > 0
    assert all(s["layers_total"] == 3 and 0 <= s["bytes_done"] <= s["bytes_total"] for s in fetching)
    assert {"resolving", "fetching"} <= {s["phase"] for s in samples}
    assert all(s["pid"] != os.getpid() and s["image"] == "docker://%s/sim/big:1" % relay.address for s in samples)
    assert not os.path.exists(progress)


def test_crash_harness_at_ci_size():
    """tests/harness/pull_crash.py as anyone runs it (``--json``): kills at every kind of mutation, nothing visible broken."""
    proc = subprocess.run([sys.executable, os.path.join(HARNESS, "pull_crash.py"), "--json"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=REPO_ROOT, timeout=600, check=False)
    if not proc.stdout.strip():
        pytest.fail("pull_crash.py printed no report (rc %d): %s" % (proc.returncode, proc.stderr.decode()[-3000:]))
    report = json.loads(proc.stdout)
    assert report["failures"] == [] and proc.returncode == 0, json.dumps(report["failures"][:5], indent=1)
    assert report["kills"]["step"] >= 8 and report["kills"]["timed"] >= 8, report["kills"]
    assert report["checks"]["rerun"] >= 4 and report["checks"]["gc"] >= 4, report["checks"]
    kinds = report["uninterrupted"]["mutations_per_kind"]
    assert {"ensure_object", "register_stream", "write_stream", "write_image", "name_stream", "sync"} <= set(kinds), kinds
