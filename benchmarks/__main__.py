"""``python -m benchmarks``: every benchmark, printed side by side."""

from __future__ import annotations

import platform
import sys

from . import (
    bench_bedrock,
    bench_filters,
    bench_import,
    bench_jwt,
    bench_llm,
    bench_report,
    bench_retrieval,
    bench_scopes,
    bench_tools,
)


def main() -> None:
    print(
        f"aiinvariants benchmarks on Python {platform.python_version()}, "
        f"{platform.machine()}, {sys.platform}"
    )
    bench_scopes.run()
    from . import bench_context, bench_passthrough  # here: merge-friendly

    bench_context.run()
    bench_passthrough.run()
    bench_jwt.run()
    bench_filters.run()
    from . import bench_audit  # imported here: keeps the list above merge-friendly

    bench_audit.run()
    bench_tools.run()
    from . import bench_langchain  # imported here: keeps the list above merge-friendly

    bench_langchain.run()
    from . import bench_agents  # imported here: keeps the list above merge-friendly

    bench_agents.run()
    from . import bench_resources  # here: merge-friendly

    bench_resources.run()
    from . import bench_fastmcp  # here: merge-friendly

    bench_fastmcp.run()
    bench_llm.run()
    bench_bedrock.run()
    bench_retrieval.run()
    bench_report.run()
    from . import bench_fastapi  # here: merge-friendly

    bench_fastapi.run()
    bench_import.run()
    from . import bench_dispatch  # here: merge-friendly

    bench_dispatch.run()
    from . import bench_agentdojo  # here: merge-friendly

    bench_agentdojo.run()
    from . import bench_strict_json  # here: merge-friendly

    bench_strict_json.run()


if __name__ == "__main__":
    main()
