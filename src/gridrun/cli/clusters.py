"""``grid clusters``, ``grid instance-types``: where runs can go, and what fits there."""

from __future__ import annotations

from typing import Any

import click

from gridrun.cli.common import home_of, output_of


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n else "-"


@click.group(invoke_without_command=True, short_help="List the clusters runs can go to.")
@click.pass_context
def clusters(ctx: click.Context) -> None:
    """List the clusters this user can run on (local, the Docker engine, each named Ray
    or Slurm cluster) with their state and capacity; `*` marks the default."""
    if ctx.invoked_subcommand is not None:
        return
    from gridrun import clusters as registry
    from gridrun.cli.output import Col, console, emit_json, table

    home = home_of(ctx)
    known = registry.load(home)
    rows: list[dict[str, Any]] = []
    for c in known.all():
        st = registry.probe(home, c)
        rows.append(
            {
                "name": c.name,
                "default": c.name == (known.default or ""),
                "backend": c.backend,
                "address": c.address,
                "state": st.state,
                "nodes": st.nodes,
                "cpus": st.cpus,
                "memory": st.memory,
                "gpus": st.gpus,
                "largest_node": st.largest,
            }
        )
    if output_of(ctx) == "json":
        emit_json(rows)
        return
    headers = ["Cluster", "Backend", "Address", "State", "Nodes", "CPUs", "Memory", "GPUs"]
    columns = [Col(h) for h in headers] + [Col("Largest node")]
    body = [
        [
            ("* " if r["default"] else "") + r["name"],
            r["backend"],
            r["address"] or "-",
            r["state"],
            r["nodes"] or "-",
            f"{r['cpus']:g}" if r["cpus"] else "-",
            _gib(r["memory"]),
            r["gpus"] if r["state"] == "up" else "-",
            r["largest_node"] or "-",
        ]
        for r in rows
    ]
    console.print(table(columns, body))


@clusters.command("add", short_help="Name a Ray or Slurm cluster to run on.")
@click.argument("name")
@click.option("--backend", required=True, help="ray or slurm (local and docker always exist).")
@click.option(
    "--address",
    help="Ray: host:port or http://host:8265; Slurm: the cluster's slurm.conf (its SLURM_CONF).",
)
@click.pass_context
def add(ctx: click.Context, name: str, backend: str, address: str | None) -> None:
    """Remember a cluster under NAME, for `grid run --cluster NAME`."""
    from gridrun import clusters as registry

    target = registry.add(home_of(ctx), name, backend, address)
    click.echo(f"Cluster {target.name} added: {target.backend} at {target.address}.")


@clusters.command("rm", short_help="Forget a named cluster (the cluster itself stays).")
@click.argument("name")
@click.pass_context
def rm(ctx: click.Context, name: str) -> None:
    from gridrun import clusters as registry

    registry.remove(home_of(ctx), name)
    click.echo(f"Cluster {name} removed from this GRID_HOME (nothing was stopped).")


def _refusals() -> None:
    from gridrun.cli.gridref import refusal

    clusters.add_command(
        refusal(
            "aws",
            "A self-hosted gridrun creates no cloud clusters: start Ray or Slurm there "
            "yourself, then `grid clusters add NAME --backend ray --address HOST:PORT`.",
        )
    )
    clusters.add_command(
        refusal(
            "logs",
            "gridrun keeps no cluster logs: read the engine's own (`ray logs`, slurmctld's "
            "log, `docker logs`); `grid logs EXPERIMENT` shows an experiment's.",
        )
    )


_refusals()


@click.command("instance-types", short_help="List instance types and whether they fit.")
@click.option("--cluster", "cluster", help="The cluster to check against (the default).")
@click.pass_context
def instance_types(ctx: click.Context, cluster: str | None) -> None:
    """Grid's instance types (for --instance_type), and whether one experiment of
    that size fits the cluster's largest node."""
    from gridrun import clusters as registry
    from gridrun.cli.output import Col, console, emit_json, table
    from gridrun.instances import INSTANCE_TYPES

    home = home_of(ctx)
    known = registry.load(home)
    target = known.get(cluster or known.default or "local")
    st = registry.probe(home, target)
    # One experiment runs on one node: what fits is what the largest node holds.
    rows = []
    for it in INSTANCE_TYPES.values():
        fits = st.state == "up" and it.cpus <= st.node_cpus and it.gpus <= st.node_gpus
        if st.node_memory:
            fits = fits and it.memory <= st.node_memory
        rows.append(
            {
                "name": it.name,
                "cpus": it.cpus,
                "memory_gib": it.memory_gib,
                "gpus": it.gpus,
                "gpu_model": it.gpu_model,
                "fits": fits,
            }
        )
    if output_of(ctx) == "json":
        emit_json({"cluster": target.name, "instance_types": rows})
        return
    columns = [Col("Instance Type"), Col("CPUs", "right"), Col("Memory", "right")]
    columns += [Col("GPUs", "right"), Col(f"Fits {target.name}")]
    body = [
        [
            r["name"],
            r["cpus"],
            f"{r['memory_gib']:g} GiB",
            f"{r['gpus']} {r['gpu_model']}" if r["gpus"] else "0",
            "yes" if r["fits"] else "no",
        ]
        for r in rows
    ]
    console.print(table(columns, body))
    console.print(f"{target.name}: {st.state}.", markup=False)
