"""Small CloudFormation templates the provisioning tests stand in for the platform's stacks (made only of resources
moto creates and the stack role may make)."""

ALARMS_TOPIC = """AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Environment: {Type: String}
  ProjectName: {Type: String}
Resources:
  Topic:
    Type: AWS::SNS::Topic
    Properties: {TopicName: !Sub "${ProjectName}-${Environment}-alarms"}
Outputs:
  TopicArn: {Value: !Ref Topic}
"""
"""A first stack: an SNS topic, its ARN as output ``TopicArn`` (what a dependent stack takes as a parameter)."""
