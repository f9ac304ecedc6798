"""The project's template.yaml starts locally with its own defaults for the layer paths and the notification key."""

from __future__ import annotations

from typing import Any

import pytest

from local.aws import DEFAULT_TEMPLATE, LocalCloud
from local.pipeline import MANIFESTS, REPO, parameters

pytestmark = pytest.mark.integration


def test_template_defaults_work_locally() -> None:
    assert "ManifestsDir" not in parameters()
    assert "NotificationKmsKeyArn" not in parameters()
    assert "StacksFile" not in parameters()
    with LocalCloud(DEFAULT_TEMPLATE, parameters=parameters()) as cloud:
        # ManifestsDir = /opt/kubernetes and StacksFile = /opt/stacks.yaml: the ManifestsLayer's content (manifests/).
        for function in ("PlanFunction", "ApplyFunction", "RequestApprovalFunction"):
            spec: Any = cloud.runtime.lookup(str(cloud.ref(function)))
            assert spec.environment["MANIFESTS_DIR"] == str(MANIFESTS), function
        stacks: Any = cloud.runtime.lookup(str(cloud.ref("StartStacksFunction")))
        assert stacks.environment["STACKS_FILE"] == str(REPO / "manifests" / "stacks.yaml")
        config = cloud.client("lambda").get_function_configuration(FunctionName=cloud.ref("ApplyFunction"))
        assert config["Environment"]["Variables"]["MANIFESTS_DIR"] == "/opt/kubernetes"  # what Lambda would show

        # NotificationKmsKeyArn = "" (CreateNotificationKey): the dedicated key, used by the topic.
        key_id = cloud.ref("NotificationKey")
        metadata = cloud.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]
        assert cloud.arn("NotificationKey") == metadata["Arn"]
        topic = cloud.client("sns").get_topic_attributes(TopicArn=cloud.ref("NotificationTopic"))["Attributes"]
        assert topic["KmsMasterKeyId"] == key_id


def test_the_notification_email_is_subscribed_to_the_topic_only_when_given() -> None:
    with LocalCloud(DEFAULT_TEMPLATE, parameters=parameters(NotificationEmail="release-team@example.com")) as cloud:
        topic = str(cloud.ref("NotificationTopic"))
        subscriptions = cloud.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "release-team@example.com")]
    with LocalCloud(DEFAULT_TEMPLATE, parameters=parameters()) as cloud:
        topic = str(cloud.ref("NotificationTopic"))
        assert cloud.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
