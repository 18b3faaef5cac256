"""The trigger service: storage events in, exactly one Beam job per object generation out.

Flow (each step one module): ``events`` normalises CloudEvents / Pub/Sub push / polled
files to one ``Arrival``; ``auth`` checks the sender; ``admission`` checks the object;
``ledger`` claims ``URL#generation`` exactly once; ``launchers`` submit the job;
``service`` wires those together for both ``app`` (HTTP) and ``watch`` (polling).
"""
