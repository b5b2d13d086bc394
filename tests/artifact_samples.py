"""Sample artifacts for the demo, the tests and the bench: a HelloWorld BPEL package, a one-task
BPMN .bar, a HumanTask package and a small Carbon app, made in memory (no binaries in the repo).

`pad` adds a stored (incompressible) file, to reach a size for the bench; `version` changes the
content (a new version of the same artifact).
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

BPEL_NS = "http://ode.fivesight.com/schemas/2006/06/27/dd"


def _zip(entries: dict[str, bytes], pad: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        if pad:
            z.writestr(zipfile.ZipInfo("resources/padding.bin"), os.urandom(pad),
                       compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


def bpel_zip(name: str = "HelloWorld", version: int = 1, pad: int = 0) -> bytes:
    deploy = f"""<?xml version="1.0" encoding="UTF-8"?>
<deploy xmlns="{BPEL_NS}" xmlns:hw="http://ode/bpel/unit-test">
  <process name="hw:{name}">
    <active>true</active>
    <provide partnerLink="helloPartnerLink">
      <service name="hw:{name}Service" port="{name}Port"/>
    </provide>
  </process>
</deploy>
"""
    bpel = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- version {version} -->
<process name="{name}" targetNamespace="http://ode/bpel/unit-test"
    xmlns="http://docs.oasis-open.org/wsbpel/2.0/process/executable">
  <sequence><receive name="start" createInstance="yes"/><reply name="end"/></sequence>
</process>
"""
    return _zip({"deploy.xml": deploy.encode(), f"{name}.bpel": bpel.encode()}, pad)


def humantask_zip(name: str = "ApproveTask", version: int = 1, pad: int = 0) -> bytes:
    htconfig = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- version {version} -->
<hic:HumanInteractionsConfiguration xmlns:hic="http://wso2.org/ht/schema/humantask/config"
    xmlns:ns="http://www.example.com/claims/">
  <hic:task><hic:name>ns:{name}</hic:name></hic:task>
</hic:HumanInteractionsConfiguration>
"""
    ht = f"""<?xml version="1.0" encoding="UTF-8"?>
<htd:humanInteractions xmlns:htd="http://docs.oasis-open.org/ns/bpel4people/ws-humantask/200803"
    targetNamespace="http://www.example.com/claims/">
  <htd:tasks><htd:task name="{name}"/></htd:tasks>
</htd:humanInteractions>
"""
    return _zip({"htconfig.xml": htconfig.encode(), f"{name}.ht": ht.encode()}, pad)


def bpmn_bar(name: str = "OneTask", version: int = 1, pad: int = 0) -> bytes:
    bpmn = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- version {version} -->
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
    targetNamespace="http://www.activiti.org/test">
  <process id="{name}" name="{name}" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <userTask id="task" name="Do it"/>
    <sequenceFlow id="f2" sourceRef="task" targetRef="end"/>
    <endEvent id="end"/>
  </process>
</definitions>
"""
    return _zip({f"{name}.bpmn20.xml": bpmn.encode()}, pad)


def car(name: str = "HelloCApp", version: str = "1.0.0", pad: int = 0) -> bytes:
    arts = f"""<?xml version="1.0" encoding="UTF-8"?>
<artifacts>
  <artifact name="{name}" version="{version}" type="carbon/application">
    <dependency artifact="HelloRegistry" version="1.0.0" include="true" serverRole="EnterpriseIntegrator"/>
  </artifact>
</artifacts>
"""
    reg = """<?xml version="1.0" encoding="UTF-8"?>
<artifact name="HelloRegistry" version="1.0.0" type="registry/resource" serverRole="EnterpriseIntegrator">
  <file>registry-info.xml</file>
</artifact>
"""
    return _zip({"artifacts.xml": arts.encode(), "HelloRegistry_1.0.0/artifact.xml": reg.encode()},
                pad)


def write_all(folder: Path, version: int = 1) -> dict[str, Path]:
    """The four samples in `folder`; file name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"HelloWorld.zip": bpel_zip(version=version),
             "ApproveTask.zip": humantask_zip(version=version),
             "OneTask.bar": bpmn_bar(version=version),
             "HelloCApp_1.0.0.car": car(version=f"1.0.{version - 1}")}
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    return out


def corrupt(data: bytes) -> bytes:
    """The archive cut in half, as a copy interrupted mid-way leaves it."""
    return data[: len(data) // 2]
