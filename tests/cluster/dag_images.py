"""Print ``{image: [job modules]}`` of every task of both DAGs, as the factory builds them.

Run with the cluster's Airflow environment (the kubernetes profile of the local cluster), so
each task's image is the one its pod would run.
"""

from __future__ import annotations

import json
import os

from airflow.dag_processing.dagbag import DagBag


def main() -> None:
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    images: dict[str, set[str]] = {}
    for dag in bag.dags.values():
        for task in dag.tasks:
            fields = getattr(task, "partial_kwargs", None) or vars(task)
            cmds, image = fields.get("cmds"), fields.get("image")
            if cmds and image and cmds[:2] == ["python", "-m"]:
                images.setdefault(image, set()).add(cmds[2])
    print(json.dumps({image: sorted(mods) for image, mods in images.items()}))


if __name__ == "__main__":
    main()
